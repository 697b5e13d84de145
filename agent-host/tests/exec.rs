//! Runs real processes through `corral_agent::exec` and checks what a remote
//! caller would see: exit reports, output bytes, and that nothing is left
//! running on the device afterwards.

use std::time::Duration;

use corral_agent::exec::{
    CommandSpec, ExecConfig, ExecError, Executor, ExitReport, ExitStatus, OutputMode,
    RunningCommand, StdinMode, StreamKind,
};

fn config() -> ExecConfig {
    ExecConfig {
        // Short enough that tests that kill do not wait long, long enough for
        // `sh` to get the signal and pass it on.
        kill_grace: Duration::from_millis(300),
        drain_idle: Duration::from_millis(300),
        ..ExecConfig::default()
    }
}

fn executor() -> Executor {
    Executor::new(config()).expect("valid config")
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new(["sh", "-c", script])
}

/// Everything a command printed, per stream, and its report.
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    report: ExitReport,
}

async fn collect(cmd: RunningCommand) -> Outcome {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(chunk) = cmd.next_output().await {
        assert!(!chunk.data.is_empty(), "chunks are never empty");
        match chunk.stream {
            StreamKind::Stdout => stdout.extend_from_slice(&chunk.data),
            StreamKind::Stderr => stderr.extend_from_slice(&chunk.data),
        }
    }
    let report = cmd.wait().await;
    Outcome {
        stdout,
        stderr,
        report,
    }
}

async fn run(spec: CommandSpec) -> Outcome {
    let exec = executor();
    let cmd = exec.spawn(spec).expect("spawn accepted");
    // Every test gets an answer in bounded time even if the layer is broken.
    tokio::time::timeout(Duration::from_secs(60), collect(cmd))
        .await
        .expect("command finished within 60 s")
}

/// State letter of a process from `/proc/PID/stat`, or `None` if the pid is
/// gone. A zombie (`Z`) is dead, only not yet reaped by its new parent.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields
    // start after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

fn is_running(pid: u32) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// True once `pid` is no longer running, waiting up to 10 s: `kill` returns
/// when the signal is queued, and the target dies when it is next scheduled,
/// which on a busy machine is a moment later.
async fn gone(pid: u32) -> bool {
    for _ in 0..1000 {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Pids of live processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // Fields after the name: state, ppid, pgrp, ...
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && is_running(pid) {
            members.push(pid);
        }
    }
    members
}

/// Waits until the group has at least `count` live members and returns them.
async fn wait_for_group(pgid: u32, count: usize) -> Vec<u32> {
    for _ in 0..500 {
        let members = group_members(pgid);
        if members.len() >= count {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "group {pgid} never reached {count} processes: {:?}",
        group_members(pgid)
    );
}

#[tokio::test]
async fn exit_code_zero() {
    let out = run(CommandSpec::new(["true"])).await;
    assert_eq!(out.report.status, ExitStatus::Exited(0));
    assert!(out.report.success());
}

#[tokio::test]
async fn exit_code_three() {
    let out = run(sh("exit 3")).await;
    assert_eq!(out.report.status, ExitStatus::Exited(3));
    assert!(!out.report.success());
}

#[tokio::test]
async fn killed_by_a_signal_reports_the_signal() {
    let out = run(sh("kill -9 $$")).await;
    assert_eq!(out.report.status, ExitStatus::Signaled(9));
}

#[tokio::test]
async fn stdout_and_stderr_are_separate_and_ordered() {
    let out = run(sh(
        "i=0; while [ $i -lt 500 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
    ))
    .await;
    assert_eq!(out.report.status, ExitStatus::Exited(0));
    let expect = |prefix: &str| -> Vec<u8> {
        (0..500)
            .map(|i| format!("{prefix}{i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    assert_eq!(out.stdout, expect("out"));
    assert_eq!(out.stderr, expect("err"));
}

#[tokio::test]
async fn argv_is_not_interpreted_by_a_shell() {
    let out = run(CommandSpec::new(["echo", "$HOME", "a;b", "*"])).await;
    assert_eq!(out.stdout, b"$HOME a;b *\n");
}

#[tokio::test]
async fn env_is_added_and_overrides_and_cwd_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        sh("echo \"$CORRAL_TEST_VAR\"; echo \"$HOME\"; pwd; test -n \"$PATH\"")
            .env("CORRAL_TEST_VAR", "added")
            .env("HOME", "/overridden")
            .cwd(dir.path()),
    )
    .await;
    assert_eq!(
        out.report.status,
        ExitStatus::Exited(0),
        "PATH is inherited"
    );
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("added\n/overridden\n{}\n", canonical.display())
    );
}

#[tokio::test]
async fn stdin_is_null_by_default() {
    let out = run(CommandSpec::new(["cat"])).await;
    assert_eq!(out.report.status, ExitStatus::Exited(0));
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn stdin_chunks_are_written_and_closed() {
    let exec = executor();
    let mut cmd = exec
        .spawn(CommandSpec::new(["cat"]).stdin(StdinMode::Piped))
        .unwrap();
    let mut stdin = cmd.take_stdin().expect("piped stdin");
    assert!(cmd.take_stdin().is_none(), "the writer is taken once");
    let writer = tokio::spawn(async move {
        stdin.write(b"hello ").await.unwrap();
        stdin.write(b"world\n").await.unwrap();
        stdin.close().await.unwrap();
    });
    let out = collect(cmd).await;
    writer.await.unwrap();
    assert_eq!(out.stdout, b"hello world\n");
    assert_eq!(out.report.status, ExitStatus::Exited(0));
}

#[tokio::test]
async fn ten_mib_output_is_fully_delivered_to_a_slow_reader() {
    const TOTAL: usize = 10 * 1024 * 1024;
    let exec = executor();
    // 16-byte lines: 10 MiB is exactly 655 360 of them.
    let cmd = exec
        .spawn(sh(&format!("yes abcdefghijklmno | head -c {TOTAL}")))
        .unwrap();

    // Nobody reads yet: the command cannot finish, because at most the queue
    // (8 x 16 KiB) and the pipe buffers can hold its output. This sleep only
    // gives it the chance to finish if backpressure were broken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cmd.exit_report(),
        None,
        "output is not buffered without bound"
    );

    let mut stdout = Vec::with_capacity(TOTAL);
    let mut reads = 0u64;
    while let Some(chunk) = cmd.next_output_limited(4096).await {
        assert_eq!(chunk.stream, StreamKind::Stdout);
        assert!(chunk.data.len() <= 4096, "limited reads respect the limit");
        stdout.extend_from_slice(&chunk.data);
        reads += 1;
        if reads % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let report = cmd.wait().await;
    assert_eq!(report.status, ExitStatus::Exited(0));
    assert_eq!(stdout.len(), TOTAL);
    assert!(
        stdout.chunks(16).all(|line| line == b"abcdefghijklmno\n"),
        "every byte arrives in order"
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_process_tree() {
    let exec = executor();
    let cmd = exec
        .spawn(sh("sleep 100 & sleep 100; ").timeout(Duration::from_secs(1)))
        .unwrap();
    let pgid = cmd.pid().expect("started");
    // sh plus both sleeps.
    let members = wait_for_group(pgid, 3).await;
    assert!(members.contains(&pgid), "the leader is in its own group");

    let out = tokio::time::timeout(Duration::from_secs(30), collect(cmd))
        .await
        .expect("the timeout ended the command");
    assert_eq!(out.report.status, ExitStatus::TimedOut);
    for pid in members {
        assert!(
            gone(pid).await,
            "process {pid} of the timed-out command is still running"
        );
    }
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    let exec = executor();
    // Ignored signals stay ignored across exec, so both sleeps ignore TERM too.
    let cmd = exec
        .spawn(sh("trap '' TERM; sleep 100 & sleep 100; ").timeout(Duration::from_millis(500)))
        .unwrap();
    let pgid = cmd.pid().unwrap();
    let members = wait_for_group(pgid, 3).await;
    let out = collect(cmd).await;
    assert_eq!(out.report.status, ExitStatus::TimedOut);
    for pid in members {
        assert!(gone(pid).await, "process {pid} survived SIGKILL escalation");
    }
}

#[tokio::test]
async fn timeout_holds_while_nobody_reads_and_after_the_handle_is_dropped() {
    let exec = executor();
    // `yes` fills the pipe at once and then blocks on it, since nobody reads.
    let cmd = exec
        .spawn(CommandSpec::new(["yes"]).timeout(Duration::from_millis(500)))
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), cmd.wait())
        .await
        .expect("timed out although output was never read");
    assert_eq!(report.status, ExitStatus::TimedOut);

    // A detached command (its link dropped, so its handle is gone).
    let detached = exec
        .spawn(sh("sleep 100 & yes").timeout(Duration::from_millis(500)))
        .unwrap();
    let pgid = detached.pid().unwrap();
    let members = wait_for_group(pgid, 3).await;
    drop(detached);
    for _ in 0..3000 {
        if exec.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(exec.running(), 0, "the detached command was stopped");
    for pid in members {
        assert!(
            gone(pid).await,
            "process {pid} of a detached command survived"
        );
    }
}

#[tokio::test]
async fn group_members_left_behind_by_a_finished_command_are_killed() {
    let exec = executor();
    let cmd = exec.spawn(sh("sleep 100 & echo $!")).unwrap();
    let out = collect(cmd).await;
    assert_eq!(out.report.status, ExitStatus::Exited(0));
    let straggler: u32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        gone(straggler).await,
        "background sleep {straggler} survived"
    );
}

#[tokio::test]
async fn cancel_from_another_task() {
    let exec = executor();
    let cmd = exec
        .spawn(sh("echo started; sleep 100 & sleep 100"))
        .unwrap();
    let pgid = cmd.pid().unwrap();
    let members = wait_for_group(pgid, 3).await;
    let canceller = cmd.canceller();
    tokio::spawn(async move { canceller.cancel() })
        .await
        .unwrap();
    let out = collect(cmd).await;
    assert_eq!(out.report.status, ExitStatus::Cancelled);
    assert_eq!(out.stdout, b"started\n");
    for pid in members {
        assert!(gone(pid).await, "process {pid} survived cancel");
    }
}

#[tokio::test]
async fn four_commands_at_once_and_a_fifth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let exec = Executor::new(ExecConfig {
        max_concurrent: 4,
        ..config()
    })
    .unwrap();
    assert_eq!(exec.max_concurrent(), 4);
    // Each command waits for the file `go`, so all four must be running at
    // the same time before any can finish.
    let script = |n: u32| {
        sh(&format!(
            "while [ ! -e go ]; do sleep 0.01; done; echo cmd{n}; echo err{n} >&2; exit {n}"
        ))
        .cwd(dir.path())
    };
    let cmds: Vec<RunningCommand> = (0..4).map(|n| exec.spawn(script(n)).unwrap()).collect();
    assert_eq!(exec.running(), 4);
    assert_eq!(
        exec.spawn(script(4)).unwrap_err(),
        ExecError::Busy { limit: 4 }
    );

    std::fs::write(&go, b"").unwrap();
    let outs = futures_join_all(cmds).await;
    for (n, out) in outs.into_iter().enumerate() {
        assert_eq!(out.report.status, ExitStatus::Exited(n as i32));
        assert_eq!(out.stdout, format!("cmd{n}\n").as_bytes());
        assert_eq!(out.stderr, format!("err{n}\n").as_bytes());
    }
    // The slots are free again once the reports are out.
    assert_eq!(exec.running(), 0);
    let again = exec.spawn(script(5)).expect("a slot is free again");
    assert_eq!(collect(again).await.report.status, ExitStatus::Exited(5));
}

/// Collects several commands concurrently (each on its own task).
async fn futures_join_all(cmds: Vec<RunningCommand>) -> Vec<Outcome> {
    let tasks: Vec<_> = cmds.into_iter().map(|c| tokio::spawn(collect(c))).collect();
    let mut outs = Vec::new();
    for task in tasks {
        outs.push(task.await.unwrap());
    }
    outs
}

#[tokio::test]
async fn failed_to_start_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            CommandSpec::new(["./tsst"]),
            "no such file: ./tsst".to_string(),
        ),
        (
            CommandSpec::new(["corral-no-such-program-xyz"]),
            "program not found in PATH: corral-no-such-program-xyz".to_string(),
        ),
        (
            CommandSpec::new(["true"]).cwd(dir.path().join("missing")),
            format!(
                "no such working directory: {}",
                dir.path().join("missing").display()
            ),
        ),
        (
            CommandSpec::new(Vec::<String>::new()),
            "empty argv: name a program to run".to_string(),
        ),
    ];
    let exec = executor();
    for (spec, message) in cases {
        let cmd = exec.spawn(spec).expect("accepted, then failed to start");
        assert_eq!(cmd.pid(), None);
        let out = collect(cmd).await;
        assert_eq!(out.report.status, ExitStatus::FailedToStart(message));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    assert_eq!(exec.running(), 0, "a failed start holds no slot");

    // Bytes from the network can be anything: a NUL cannot be passed to
    // exec, and must not panic the agent.
    let cmd = exec
        .spawn(CommandSpec::new(["echo", "a\0b"]).env("X\0", "y"))
        .unwrap();
    match collect(cmd).await.report.status {
        ExitStatus::FailedToStart(message) => {
            assert!(message.starts_with("cannot start echo: "), "{message}")
        }
        other => panic!("expected FailedToStart, got {other:?}"),
    }

    // A file that is not executable.
    let script = dir.path().join("not-executable");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    let out = run(CommandSpec::new([script.as_os_str()])).await;
    match out.report.status {
        ExitStatus::FailedToStart(message) => {
            assert!(message.starts_with("permission denied: "), "{message}")
        }
        other => panic!("expected FailedToStart, got {other:?}"),
    }
}

#[tokio::test]
async fn tail_mode_keeps_the_last_bytes_of_each_stream() {
    let exec = Executor::new(ExecConfig {
        tail_bytes: 64,
        ..config()
    })
    .unwrap();
    let cmd = exec
        .spawn(sh(
            "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo bye >&2; exit 7",
        ))
        .unwrap();
    cmd.set_output_mode(OutputMode::Tail);
    assert_eq!(cmd.output_mode(), OutputMode::Tail);
    // In tail mode nothing is queued: the command runs to its end unread.
    let report = cmd.wait().await;
    assert_eq!(report.status, ExitStatus::Exited(7));
    assert_eq!(cmd.next_output().await, None, "nothing was queued");

    let full: String = (0..2000).map(|i| format!("line{i}\n")).collect();
    let tail = cmd.take_tail();
    assert_eq!(tail.stdout, &full.as_bytes()[full.len() - 64..]);
    assert_eq!(tail.stdout_dropped, (full.len() - 64) as u64);
    assert_eq!(tail.stderr, b"bye\n");
    assert_eq!(tail.stderr_dropped, 0);
    // Taking empties it; the report is still there.
    assert_eq!(cmd.take_tail().stdout, b"");
    assert_eq!(cmd.exit_report().unwrap().status, ExitStatus::Exited(7));
}

#[tokio::test]
async fn switching_to_tail_and_back_loses_and_reorders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exec = executor();
    let cmd = exec
        .spawn(
            sh(
                "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; \
                while [ ! -e go ]; do sleep 0.01; done; echo after",
            )
            .cwd(dir.path()),
        )
        .unwrap();
    let full: String = (0..3000).map(|i| format!("line{i}\n")).collect();

    // Forward a little, then lose the link while chunks are queued and the
    // command is still writing.
    let mut forwarded = Vec::new();
    while forwarded.len() < 1000 {
        let chunk = cmd.next_output_limited(100).await.expect("more output");
        forwarded.extend_from_slice(&chunk.data);
    }
    cmd.set_output_mode(OutputMode::Tail);

    // Wait until the command has printed everything before `go`: the tail
    // (large enough here) then holds exactly the rest.
    let mut kept = Vec::new();
    for _ in 0..3000 {
        if forwarded.len() + kept.len() >= full.len() {
            break;
        }
        let tail = cmd.take_tail();
        assert_eq!(tail.stdout_dropped, 0);
        kept.extend_from_slice(&tail.stdout);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The link is back: forward again.
    cmd.set_output_mode(OutputMode::Forward);
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let rest = collect(cmd).await;

    let mut all = forwarded;
    all.extend_from_slice(&kept);
    assert_eq!(all, full.as_bytes());
    assert_eq!(rest.stdout, b"after\n");
    assert_eq!(rest.report.status, ExitStatus::Exited(0));
}

#[tokio::test]
async fn shutdown_stops_everything_and_refuses_new_commands() {
    let exec = executor();
    let a = exec.spawn(CommandSpec::new(["sleep", "100"])).unwrap();
    let b = exec.spawn(sh("sleep 100 & sleep 100")).unwrap();
    let b_members = wait_for_group(b.pid().unwrap(), 3).await;
    tokio::time::timeout(Duration::from_secs(30), exec.shutdown())
        .await
        .expect("shutdown finished");
    assert_eq!(a.wait().await.status, ExitStatus::Cancelled);
    assert_eq!(b.wait().await.status, ExitStatus::Cancelled);
    for pid in b_members {
        assert!(gone(pid).await, "process {pid} survived shutdown");
    }
    assert_eq!(
        exec.spawn(CommandSpec::new(["true"])).unwrap_err(),
        ExecError::ShuttingDown
    );
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let err = Executor::new(ExecConfig {
        max_concurrent: 0,
        ..ExecConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, ExecError::InvalidConfig(_)), "{err}");
}

#[test]
fn handles_can_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Executor>();
    send_sync::<RunningCommand>();
    send_sync::<corral_agent::exec::Canceller>();
    send_sync::<corral_agent::exec::StdinWriter>();
}
