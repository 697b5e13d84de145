//! End-to-end tests of `corral-agent` over TCP with a pre-shared key, driven
//! through the real protocol by the gateway's own client.

mod common;

use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{collect, gone, random_file, run, sh, Agent, PATIENCE};
use corral_io::client::{ClientError, ExecEvent, ExecOptions, SessionState, TransferOptions};
use corral_io::driver::{spawn_link, LinkEvent};
use corral_protocol::message::{Body, Envelope, ErrorCode, ExitReason, FileKind};
use corral_protocol::Config;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn device_error(err: ClientError) -> ErrorCode {
    match err {
        ClientError::Device { code, .. } => code,
        other => panic!("expected an error reply from the agent, got {other:?}"),
    }
}

#[tokio::test]
async fn exit_codes_and_separate_streams() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;

    let ok = run(&client, &sh("true")).await;
    assert_eq!((ok.exit.reason, ok.exit.code), (ExitReason::Exited, 0));
    assert!(ok.pid.is_some_and(|p| p > 0), "Started carries the pid");

    let three = run(&client, &sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!(
        (three.exit.reason, three.exit.code),
        (ExitReason::Exited, 3)
    );
    assert_eq!(three.stdout(), "out\n");
    assert_eq!(three.stderr(), "err\n");
    assert_eq!(three.exit.shell_status(), 3);

    let killed = run(&client, &sh("kill -9 $$")).await;
    assert_eq!(killed.exit.reason, ExitReason::Signaled);
    assert_eq!(killed.exit.signal, 9);
    assert_eq!(killed.exit.shell_status(), 128 + 9);

    let missing = run(
        &client,
        &ExecOptions {
            argv: vec!["no-such-program-here".into()],
            ..ExecOptions::default()
        },
    )
    .await;
    assert_eq!(missing.exit.reason, ExitReason::FailedToStart);
    assert!(
        missing.pid.is_none(),
        "no Started for a command that never ran"
    );
    assert!(
        missing.exit.detail.contains("no-such-program-here"),
        "{:?}",
        missing.exit.detail
    );
}

#[tokio::test]
async fn argv_env_cwd_and_stdin() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    std::fs::create_dir(agent.path("work")).unwrap();

    let opts = ExecOptions {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "printf '%s|%s|%s' \"$1\" \"$GREETING\" \"$(pwd)\"".into(),
            "sh".into(),
            "a b; $c".into(),
        ],
        env: vec![("GREETING".into(), "hi there".into())],
        cwd: "work".into(),
        ..ExecOptions::default()
    };
    let ran = run(&client, &opts).await;
    let root = std::fs::canonicalize(agent.root.path()).unwrap();
    assert_eq!(
        ran.stdout(),
        format!("a b; $c|hi there|{}/work", root.display())
    );

    let mut cat = ExecOptions {
        argv: vec!["cat".into()],
        stdin: true,
        ..ExecOptions::default()
    };
    cat.timeout = Some(PATIENCE);
    let handle = client.exec(&cat).await.unwrap();
    handle.write_stdin(b"hello ").await.unwrap();
    handle.write_stdin(b"stdin").await.unwrap();
    handle.close_stdin().await.unwrap();
    let ran = collect(handle).await;
    assert_eq!(ran.stdout(), "hello stdin");
    assert_eq!(ran.exit.code, 0);
}

#[tokio::test]
async fn device_info_reports_identity_and_limits() {
    let agent = Agent::tcp(true, &["--max-commands", "5"]).await;
    let client = agent.connect().await;
    let id = client.identity().expect("ready");
    assert_eq!(id.name, "test-device");
    assert_eq!(id.serial, "SN-TEST");
    assert_eq!(
        id.firmware,
        concat!("corral-agent ", env!("CARGO_PKG_VERSION"))
    );
    assert!(id.board.starts_with("linux-"), "board {:?}", id.board);
    assert_ne!(id.boot_id, 0);
    assert_eq!(id.limits.max_commands, 5);
    assert!(id.limits.storage_bytes >= id.limits.storage_free && id.limits.storage_free > 0);
    assert!(id.commands.is_empty(), "an OS agent runs any program");
    client.ping(PATIENCE).await.expect("ping answered");

    // A second session on a new connection reports the same boot id: the
    // agent did not restart.
    drop(client);
    let again = agent.connect().await;
    assert_eq!(again.identity().unwrap().boot_id, id.boot_id);
}

#[tokio::test]
async fn ten_mib_push_and_pull_with_verified_hash() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let (data, hash) = random_file(10 * 1024 * 1024);
    let opts = TransferOptions::default();
    let outcome = client
        .push(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            hash,
            "dir/big.bin",
            0o640,
            &opts,
            &mut |_| {},
        )
        .await
        .expect("push");
    assert_eq!(outcome.resumed_from, 0);
    assert_eq!(outcome.sent, data.len() as u64);

    let on_disk = std::fs::read(agent.path("dir/big.bin")).unwrap();
    assert!(on_disk == data, "the file on the device is what was pushed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(agent.path("dir/big.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    assert_eq!(
        client.hash("dir/big.bin", PATIENCE).await.unwrap(),
        (data.len() as u64, hash)
    );

    let mut pulled = Vec::new();
    let (size, pulled_hash) = client
        .pull("dir/big.bin", 0, &mut pulled, &opts, &mut |_| {})
        .await
        .expect("pull");
    assert_eq!((size, pulled_hash), (data.len() as u64, hash));
    assert!(pulled == data, "the pulled bytes are the pushed bytes");

    // A pull that resumes at an offset still reports the whole file's hash.
    let mut tail = Vec::new();
    let (size, tail_hash) = client
        .pull("dir/big.bin", 4_000_000, &mut tail, &opts, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((size, tail_hash), (data.len() as u64, hash));
    assert!(tail == data[4_000_000..]);
}

/// A transport that fails every write after `budget` bytes, like a cable
/// pulled in the middle of a push.
struct CutAfter<T> {
    inner: T,
    budget: usize,
}

impl<T: AsyncRead + Unpin> AsyncRead for CutAfter<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CutAfter<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        let n = buf.len().min(self.budget);
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(k)) => {
                this.budget -= k;
                Poll::Ready(Ok(k))
            }
            other => other,
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn push_resumes_after_the_connection_is_cut() {
    let agent = Agent::tcp(true, &[]).await;
    let (data, hash) = random_file(8 * 1024 * 1024);
    let opts = TransferOptions::default();

    let cut = CutAfter {
        inner: agent.tcp_stream().await,
        budget: 3 * 1024 * 1024,
    };
    let (tx, rx) = spawn_link(cut, Config::stream(), corral_io::new_session_id());
    let first = common::client(tx, rx).await;
    let err = first
        .push(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            hash,
            "resume.bin",
            0o644,
            &opts,
            &mut |_| {},
        )
        .await
        .expect_err("the push fails when the connection is cut");
    assert!(
        err.is_infrastructure(),
        "a cut link is an infrastructure error: {err:?}"
    );
    assert!(
        !agent.path("resume.bin").exists(),
        "nothing appears before the commit"
    );
    drop(first);

    let second = agent.connect().await;
    let outcome = second
        .push(
            &mut Cursor::new(data.clone()),
            data.len() as u64,
            hash,
            "resume.bin",
            0o644,
            &opts,
            &mut |_| {},
        )
        .await
        .expect("the second push completes");
    assert!(outcome.resumed_from > 0, "the push resumed: {outcome:?}");
    assert_eq!(outcome.resumed_from + outcome.sent, data.len() as u64);
    assert_eq!(
        second.hash("resume.bin", PATIENCE).await.unwrap(),
        (data.len() as u64, hash)
    );
    assert!(std::fs::read(agent.path("resume.bin")).unwrap() == data);
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let mut opts = sh("sleep 30 & echo $!; wait");
    opts.timeout = Some(Duration::from_millis(1500));
    let ran = run(&client, &opts).await;
    assert_eq!(ran.exit.reason, ExitReason::TimedOut);
    assert_eq!(ran.exit.signal, 15, "killed with SIGTERM first");
    let grandchild: u32 = ran.stdout().trim().parse().expect("the grandchild's pid");
    assert!(
        gone(grandchild).await,
        "the grandchild {grandchild} was killed with its group"
    );
    assert!(gone(ran.pid.unwrap()).await);
}

#[tokio::test]
async fn cancel_stops_a_command() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let mut handle = client.exec(&sh("echo started; sleep 30")).await.unwrap();
    let mut pid = None;
    let mut out = Vec::new();
    while !out.ends_with(b"started\n") {
        match handle.next(PATIENCE).await.unwrap().unwrap() {
            ExecEvent::Started(p) => pid = Some(p),
            ExecEvent::Stdout(d) => out.extend(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    handle.cancel().await.unwrap();
    let ran = collect(handle).await;
    assert_eq!(ran.exit.reason, ExitReason::Cancelled);
    assert_eq!(ran.exit.signal, 15);
    assert!(gone(pid.unwrap()).await);
}

#[tokio::test]
async fn four_commands_run_at_once() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    // Each command waits until all four have started: they can only finish
    // if they run at the same time.
    let script = |n: u32| {
        let mut o = sh(&format!(
            "touch ready.{n}; while [ \"$(ls ready.* | wc -l)\" -lt 4 ]; do sleep 0.05; done; echo done {n}"
        ));
        o.timeout = Some(PATIENCE);
        o
    };
    let scripts: Vec<ExecOptions> = (1..=4).map(script).collect();
    let (a, b, c, d) = tokio::join!(
        run(&client, &scripts[0]),
        run(&client, &scripts[1]),
        run(&client, &scripts[2]),
        run(&client, &scripts[3]),
    );
    for (n, ran) in [a, b, c, d].iter().enumerate() {
        assert_eq!(
            ran.exit.reason,
            ExitReason::Exited,
            "command {} timed out waiting for the others",
            n + 1
        );
        assert_eq!(ran.stdout(), format!("done {}\n", n + 1));
    }
}

#[tokio::test]
async fn reattach_after_a_lost_link_gets_all_output_and_the_exit() {
    let agent = Agent::tcp(true, &[]).await;
    let (io, cutter) = common::severable(agent.tcp_stream().await);
    let (tx, rx) = spawn_link(io, Config::stream(), corral_io::new_session_id());
    let first = common::client(tx, rx).await;
    let mut opts = sh("echo before; sleep 1; echo after");
    opts.token = 0xC0FFEE;
    let mut handle = first.exec(&opts).await.unwrap();
    let mut out = Vec::new();
    let mut pid = None;
    while !out.ends_with(b"before\n") {
        match handle.next(PATIENCE).await.unwrap().unwrap() {
            ExecEvent::Started(p) => pid = Some(p),
            ExecEvent::Stdout(d) => out.extend(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Lose the link, then come back on a new connection.
    cutter.cut();
    agent
        .wait_for_log("keeping the command for a re-attach")
        .await
        .expect("the agent notices the lost link and keeps the command");
    drop(handle);
    drop(first);

    let second = agent.connect().await;
    let ran = collect(second.attach(0xC0FFEE).await.unwrap()).await;
    assert_eq!(ran.pid, pid, "the attach reports the same process");
    out.extend(&ran.stdout);
    assert_eq!(String::from_utf8_lossy(&out), "before\nafter\n");
    assert_eq!((ran.exit.reason, ran.exit.code), (ExitReason::Exited, 0));
    assert_eq!(ran.exit.output_dropped, 0);

    let err = second
        .attach(0xBAD)
        .await
        .unwrap()
        .next(PATIENCE)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(device_error(err), ErrorCode::NO_SUCH_REQUEST);
}

/// Starts `script` with a token; it waits for a line on `./go.fifo`, which
/// the test writes only after the link is gone, so everything it prints
/// afterwards is kept by the agent. Then re-attaches and collects it.
async fn print_while_detached(tail_bytes: &str, script: &str) -> common::Ran {
    let agent = Agent::tcp(true, &["--tail-bytes", tail_bytes]).await;
    let first = agent.connect().await;
    let mut opts = sh(&format!("read line < ./go.fifo; {script}"));
    opts.token = 7;
    let status = std::process::Command::new("mkfifo")
        .arg(agent.path("go.fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut handle = first.exec(&opts).await.unwrap();
    assert!(matches!(
        handle.next(PATIENCE).await,
        Some(Ok(ExecEvent::Started(_)))
    ));
    drop(handle);
    drop(first);
    // The new connection replaces the first one.
    let second = agent.connect().await;
    agent
        .wait_for_log("keeping the command for a re-attach")
        .await
        .expect("the command detached");
    std::fs::write(agent.path("go.fifo"), "go\n").unwrap();
    agent
        .wait_for_log("command ended")
        .await
        .expect("the command ended");
    collect(second.attach(7).await.unwrap()).await
}

#[tokio::test]
async fn a_detached_command_keeps_a_bounded_tail() {
    let ran = print_while_detached(
        "1000",
        "head -c 5000 /dev/zero | tr '\\0' x; echo; echo end >&2",
    )
    .await;
    assert_eq!(ran.exit.code, 0);
    assert_eq!(ran.stdout.len(), 1000, "only the tail was kept");
    assert!(ran.stdout.ends_with(b"x\n"));
    assert_eq!(ran.stderr(), "end\n");
    assert_eq!(ran.exit.output_dropped, 5001 - 1000);
}

#[tokio::test]
async fn kept_output_larger_than_the_credit_is_delivered_whole() {
    // 600 kB kept: more than the 256 KiB the gateway grants at first.
    let ran = print_while_detached(
        "400000",
        "head -c 300000 /dev/zero | tr '\\0' x; head -c 300000 /dev/zero | tr '\\0' y >&2",
    )
    .await;
    assert_eq!(ran.exit.code, 0);
    assert_eq!(ran.stdout, vec![b'x'; 300_000]);
    assert_eq!(ran.stderr, vec![b'y'; 300_000]);
    assert_eq!(ran.exit.output_dropped, 0);
}

#[tokio::test]
async fn a_new_connection_replaces_the_current_one() {
    let agent = Agent::tcp(true, &[]).await;
    let first = agent.connect().await;
    let mut state = first.state();
    let second = agent.connect().await;
    let closed = tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, SessionState::Closed(_))),
    )
    .await;
    assert!(
        closed.is_ok(),
        "the first connection is closed by the agent"
    );
    second
        .ping(PATIENCE)
        .await
        .expect("the new connection works");
}

#[tokio::test]
async fn paths_that_escape_the_root_are_refused() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let opts = TransferOptions::default();
    let outside = agent.root.path().parent().unwrap().join("x");
    let existed = outside.exists();
    for path in ["../x", "/etc/passwd", "a/../../x"] {
        let err = client.stat(path, PATIENCE).await.unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "stat {path}");
        let err = client.list(path, PATIENCE).await.unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "list {path}");
        let err = client.remove(path, PATIENCE).await.unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "remove {path}");
        let err = client.hash(path, PATIENCE).await.unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "hash {path}");
        let err = client
            .pull(path, 0, &mut Vec::new(), &opts, &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "pull {path}");
        let data = b"nope".to_vec();
        let hash = common::sha256(&data);
        let err = client
            .push(
                &mut Cursor::new(data),
                4,
                hash,
                path,
                0o644,
                &opts,
                &mut |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "push {path}");
        let mut cwd = sh("pwd");
        cwd.cwd = path.into();
        let err = client
            .exec(&cwd)
            .await
            .unwrap()
            .next(PATIENCE)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(device_error(err), ErrorCode::OUTSIDE_ROOT, "exec in {path}");
    }
    assert_eq!(
        outside.exists(),
        existed,
        "nothing was written next to the root"
    );
}

#[tokio::test]
async fn file_requests_and_their_errors() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    std::fs::create_dir_all(agent.path("d/sub")).unwrap();
    std::fs::write(agent.path("d/f.txt"), b"hello").unwrap();

    let stat = client.stat("d/f.txt", PATIENCE).await.unwrap();
    assert_eq!((stat.kind, stat.size), (FileKind::File, 5));
    assert!(stat.mtime > 0);
    let mut names: Vec<_> = client
        .list("d", PATIENCE)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, s)| (n, s.kind))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        [
            ("f.txt".to_string(), FileKind::File),
            ("sub".to_string(), FileKind::Dir)
        ]
    );
    assert_eq!(
        client.hash("d/f.txt", PATIENCE).await.unwrap(),
        (5, common::sha256(b"hello"))
    );

    let code = |r: Result<(), ClientError>| device_error(r.unwrap_err());
    assert_eq!(
        code(client.stat("nope", PATIENCE).await.map(drop)),
        ErrorCode::NOT_FOUND
    );
    assert_eq!(
        code(client.hash("d", PATIENCE).await.map(drop)),
        ErrorCode::IS_A_DIRECTORY
    );
    assert_eq!(
        code(client.list("d/f.txt", PATIENCE).await.map(drop)),
        ErrorCode::NOT_A_DIRECTORY
    );
    assert_eq!(
        code(client.remove("d", PATIENCE).await),
        ErrorCode::INVALID_ARGUMENT
    );

    // A push whose data does not match its hash is refused and leaves
    // nothing behind.
    let err = client
        .push(
            &mut Cursor::new(b"wrong".to_vec()),
            5,
            common::sha256(b"right"),
            "d/g.txt",
            0o644,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(device_error(err), ErrorCode::HASH_MISMATCH);
    assert!(!agent.path("d/g.txt").exists());

    client.remove("d/f.txt", PATIENCE).await.unwrap();
    client.remove("d/sub", PATIENCE).await.unwrap();
    assert!(!agent.path("d/f.txt").exists() && !agent.path("d/sub").exists());
}

/// The next reply on a raw link, skipping the agent's log lines (id 0).
async fn next_message(rx: &mut corral_io::driver::LinkReceiver) -> Vec<u8> {
    loop {
        match tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("an answer")
            .expect("link open")
        {
            LinkEvent::Message(m) if m.first() != Some(&0) => return m,
            LinkEvent::Closed(e) => panic!("link closed: {e:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn unknown_kinds_and_bad_bodies_get_typed_answers() {
    let agent = Agent::tcp(true, &[]).await;
    let (tx, mut rx) = spawn_link(
        agent.tcp_stream().await,
        Config::stream(),
        corral_io::new_session_id(),
    );
    // Postcard: the id, then the kind, as varints.
    tx.send(vec![5, 99]).await.unwrap();
    let reply = next_message(&mut rx).await;
    assert_eq!(
        Envelope::decode(&reply).unwrap(),
        Envelope::new(5, Body::Unsupported(99))
    );
    // Kind 4 (Exec) with a body that does not decode.
    tx.send(vec![6, 4, 0xff, 0xff, 0xff]).await.unwrap();
    let reply = next_message(&mut rx).await;
    match Envelope::decode(&reply).unwrap() {
        Envelope {
            id: 6,
            body: Body::Error(e),
        } => assert_eq!(e.code, ErrorCode::INVALID_ARGUMENT),
        other => panic!("unexpected {other:?}"),
    }
    tx.send_envelope(&Envelope::new(8, Body::Ping(77)))
        .await
        .unwrap();
    assert_eq!(
        Envelope::decode(&next_message(&mut rx).await).unwrap(),
        Envelope::new(8, Body::Pong(77))
    );
}

#[tokio::test]
async fn push_writes_must_continue_where_the_last_one_ended() {
    use corral_protocol::message::{PutOpen, PutReady, Write};
    let agent = Agent::tcp(true, &[]).await;
    let (tx, mut rx) = spawn_link(
        agent.tcp_stream().await,
        Config::stream(),
        corral_io::new_session_id(),
    );
    let data = b"0123456789";
    let open = PutOpen {
        path: "gap.bin",
        size: data.len() as u64,
        sha256: common::sha256(data),
        mode: 0o644,
    };
    tx.send_envelope(&Envelope::new(3, Body::PutOpen(open)))
        .await
        .unwrap();
    assert_eq!(
        Envelope::decode(&next_message(&mut rx).await).unwrap(),
        Envelope::new(
            3,
            Body::PutReady(PutReady {
                have: 0,
                credit: 1024 * 1024
            })
        )
    );
    let gap = Write {
        offset: 4,
        data: &data[4..],
    };
    tx.send_envelope(&Envelope::new(3, Body::Write(gap)))
        .await
        .unwrap();
    match Envelope::decode(&next_message(&mut rx).await).unwrap() {
        Envelope {
            id: 3,
            body: Body::Error(e),
        } => {
            assert_eq!(e.code, ErrorCode::BAD_OFFSET);
            assert!(e.message.contains("offset 0"), "{}", e.message);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The push is over: its commit finds no open push.
    tx.send_envelope(&Envelope::new(3, Body::Commit))
        .await
        .unwrap();
    match Envelope::decode(&next_message(&mut rx).await).unwrap() {
        Envelope {
            id: 3,
            body: Body::Error(e),
        } => assert_eq!(e.code, ErrorCode::NO_SUCH_REQUEST),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!agent.path("gap.bin").exists());
}

#[tokio::test]
async fn agent_warnings_are_forwarded_as_log_messages() {
    let agent = Agent::tcp(true, &[]).await;
    let (tx, rx) = spawn_link(
        agent.tcp_stream().await,
        Config::stream(),
        corral_io::new_session_id(),
    );
    let raw = tx.clone();
    let client = common::client(tx, rx).await;
    let mut logs = client.logs();
    // Not even a request id: the agent can only log it.
    raw.send(vec![0xff]).await.unwrap();
    let line = tokio::time::timeout(PATIENCE, logs.recv())
        .await
        .expect("a log line")
        .unwrap();
    assert!(line.contains("malformed message"), "{line:?}");
}

#[tokio::test]
async fn wrong_key_is_refused_and_logged() {
    let agent = Agent::tcp(true, &[]).await;
    let wrong = corral_protocol::auth::Key::from_bytes([7; 32]);
    let addr = agent.addr.unwrap().to_string();
    let err = corral_io::transport::connect_tcp(&addr, Some(&wrong))
        .await
        .expect_err("a wrong key is refused");
    assert!(err.to_string().contains("refused"), "{err}");
    let line = agent
        .wait_for_log("failed authentication")
        .await
        .expect("the agent logs the refusal");
    assert!(line.contains("127.0.0.1"), "the log names the peer: {line}");
    // The right key still works.
    agent.connect().await.ping(PATIENCE).await.unwrap();
}

#[tokio::test]
async fn reset_stops_commands_and_changes_the_boot_id() {
    let agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let before = client.identity().unwrap().boot_id;
    let mut opts = sh("sleep 30");
    opts.token = 99;
    let mut handle = client.exec(&opts).await.unwrap();
    let Some(Ok(ExecEvent::Started(pid))) = handle.next(PATIENCE).await else {
        panic!("the command starts");
    };
    client.reset(PATIENCE).await.expect("reset acknowledged");
    assert!(gone(pid).await, "the reset stopped the running command");

    // The session comes back by itself, with a new boot id.
    let mut state = client.state();
    let after = tokio::time::timeout(PATIENCE, async {
        loop {
            if let SessionState::Ready(id) = &*state.borrow_and_update() {
                if id.boot_id != before {
                    return id.boot_id;
                }
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("the session restarts with a new boot id");
    assert_ne!(after, 0);
    let err = client
        .attach(99)
        .await
        .unwrap()
        .next(PATIENCE)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        device_error(err),
        ErrorCode::NO_SUCH_REQUEST,
        "the reset forgot the command"
    );
    assert_eq!(run(&client, &sh("echo alive")).await.stdout(), "alive\n");
}

#[tokio::test]
async fn reset_command_runs_instead_of_the_builtin_reset() {
    let root_marker = tempfile::tempdir().unwrap();
    let marker = root_marker.path().join("reset-ran");
    let command = format!("touch {}", marker.display());
    let agent = Agent::tcp(true, &["--reset-command", &command]).await;
    let client = agent.connect().await;
    let boot = client.identity().unwrap().boot_id;
    client.reset(PATIENCE).await.unwrap();
    agent
        .wait_for_log("reset command finished")
        .await
        .expect("the reset command ran");
    assert!(marker.exists());
    client.ping(PATIENCE).await.expect("the session goes on");
    assert_eq!(client.identity().unwrap().boot_id, boot);
}

#[tokio::test]
async fn sigterm_stops_running_commands_and_exits_zero() {
    let mut agent = Agent::tcp(true, &[]).await;
    let client = agent.connect().await;
    let mut handle = client.exec(&sh("sleep 30")).await.unwrap();
    let Some(Ok(ExecEvent::Started(pid))) = handle.next(PATIENCE).await else {
        panic!("the command starts");
    };
    let status = agent.terminate().await;
    assert_eq!(status.code(), Some(0));
    assert!(
        gone(pid).await,
        "the agent stopped its command before exiting"
    );
}
