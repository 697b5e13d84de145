//! Commands, driven from a gateway-side link over a simulated line.

mod common;

use std::time::Duration;

use common::{Got, Sim};
use corral_protocol::message::{Body, ErrorCode, ExecRequest, ExitReason, StrList};

fn exited(code: i32) -> impl Fn(&Got) -> bool {
    move |g| matches!(g, Got::Exit { reason: ExitReason::Exited, code: c, .. } if *c == code)
}

#[test]
fn echo_prints_its_arguments_and_exits_zero() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["echo", "hello,", "tiny world"], 0, 1024);
    assert_eq!(sim.next(id), Got::Started);
    let (out, err, exit) = sim.finish(id);
    assert_eq!(out, b"hello, tiny world\n");
    assert!(err.is_empty());
    assert!(exited(0)(&exit), "{exit:?}");
    assert_eq!(sim.agent.commands_running(), 0, "the slot is free again");
}

#[test]
fn stdout_and_stderr_stay_apart_and_the_exit_code_is_kept() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["yell", "boo"], 0, 1024);
    let (out, err, exit) = sim.finish(id);
    assert_eq!((out.as_slice(), err.as_slice()), (&b"boo"[..], &b"boo"[..]));
    assert!(exited(3)(&exit), "{exit:?}");
}

#[test]
fn board_commands_come_before_builtins_and_unknown_ones_are_refused() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["loud-echo"], 0, 1024);
    assert_eq!(sim.finish(id).0, b"ECHO\n");
    let id = sim.exec(&["format-disk"], 0, 1024);
    match sim.next(id) {
        Got::Error(code, message) => {
            assert_eq!(code, ErrorCode::UNKNOWN_COMMAND);
            assert!(
                message.contains("info"),
                "the message points at `info`: {message}"
            );
        }
        other => panic!("expected UNKNOWN_COMMAND, got {other:?}"),
    }
}

#[test]
fn bad_usage_exits_two_with_a_message_on_stderr() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["sleep", "soon"], 0, 1024);
    let (out, err, exit) = sim.finish(id);
    assert!(out.is_empty());
    assert_eq!(err, b"usage: sleep MS\n");
    assert!(exited(2)(&exit), "{exit:?}");
}

#[test]
fn sleep_exits_after_its_time_without_blocking_the_agent() {
    let mut sim = Sim::connected();
    let start = sim.now;
    let id = sim.exec(&["sleep", "300"], 0, 1024);
    assert_eq!(sim.next(id), Got::Started);
    // While it sleeps, the agent still answers.
    let ping = sim.id();
    sim.send(ping, Body::Ping(77));
    assert_eq!(sim.next(ping), Got::Pong(77));
    assert!(sim.now < start + Duration::from_millis(300));
    let (_, _, exit) = sim.finish(id);
    assert!(exited(0)(&exit), "{exit:?}");
    assert!(
        sim.now >= start + Duration::from_millis(300),
        "it slept its time"
    );
}

#[test]
fn a_timeout_stops_the_command_and_reports_timed_out() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["sleep", "5000"], 100, 1024);
    let (_, _, exit) = sim.finish(id);
    match exit {
        Got::Exit {
            reason: ExitReason::TimedOut,
            duration_ms,
            ..
        } => assert!((100..5000).contains(&duration_ms), "ran {duration_ms} ms"),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert_eq!(sim.agent.commands_running(), 0);
}

#[test]
fn cancel_stops_the_command_and_reports_cancelled() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["sleep", "5000"], 0, 1024);
    assert_eq!(sim.next(id), Got::Started);
    sim.run_for(Duration::from_millis(50));
    sim.send(id, Body::Cancel);
    let (_, _, exit) = sim.finish(id);
    match exit {
        Got::Exit {
            reason: ExitReason::Cancelled,
            duration_ms,
            ..
        } => assert!(duration_ms < 5000, "ran {duration_ms} ms"),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    // Cancelling it again: nothing runs under that id any more.
    sim.send(id, Body::Cancel);
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::NO_SUCH_REQUEST, _)
    ));
}

#[test]
fn output_under_a_tiny_credit_arrives_complete_and_in_order() {
    let mut sim = Sim::connected();
    // 8 bytes outstanding at most: the bench asserts on every message that
    // the device never sent more than was granted, and grants back what
    // arrived.
    let id = sim.exec(&["count", "400"], 0, 8);
    let (out, _, exit) = sim.finish(id);
    let expected: String = (1..=400).map(|n| format!("{n}\n")).collect();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    assert!(exited(0)(&exit), "{exit:?}");
    let outputs = sim
        .log
        .iter()
        .filter(|m| m.id == id && matches!(m.got, Got::Output(..)))
        .count();
    assert!(
        outputs >= expected.len() / 8,
        "{outputs} messages: each at most the credit"
    );
}

#[test]
fn output_stops_at_the_credit_and_cancel_still_ends_the_command() {
    let mut sim = Sim::connected();
    let id = sim.exec(&["count", "100000"], 0, 0);
    sim.grant_as_consumed(id, 50, false);
    sim.send(id, Body::Credit(50));
    sim.run_for(Duration::from_secs(2));
    let got: usize = sim
        .log
        .iter()
        .filter_map(|m| match &m.got {
            Got::Output(_, d) if m.id == id => Some(d.len()),
            _ => None,
        })
        .sum();
    assert_eq!(
        got, 50,
        "exactly the credit arrived, then the command paused"
    );
    assert_eq!(sim.agent.commands_running(), 1);
    sim.grant(id, 30);
    sim.run_for(Duration::from_millis(500));
    sim.send(id, Body::Cancel);
    let (out, _, exit) = sim.finish(id);
    assert_eq!(out.len(), 80, "50 + 30 granted bytes");
    assert!(out.starts_with(b"1\n2\n3\n"));
    assert!(
        matches!(
            exit,
            Got::Exit {
                reason: ExitReason::Cancelled,
                ..
            }
        ),
        "{exit:?}"
    );
}

#[test]
fn more_commands_than_slots_get_busy() {
    let mut sim = Sim::connected();
    let a = sim.exec(&["sleep", "1000"], 0, 64);
    let b = sim.exec(&["sleep", "1000"], 0, 64);
    let c = sim.exec(&["sleep", "1000"], 0, 64);
    assert_eq!(sim.next(a), Got::Started);
    assert_eq!(sim.next(b), Got::Started);
    assert!(matches!(sim.next(c), Got::Error(ErrorCode::BUSY, _)));
    // Once one ends, a slot is free again.
    sim.send(a, Body::Cancel);
    sim.finish(a);
    let d = sim.exec(&["echo", "again"], 0, 64);
    assert_eq!(sim.finish(d).0, b"again\n");
    sim.finish(b);
}

/// A request and a check of its reply.
type Case<'a> = (ExecRequest<'a>, fn(&Got) -> bool);

#[test]
fn requests_the_device_cannot_serve_are_refused_with_reasons() {
    let mut sim = Sim::connected();
    let mut argv = [0u8; 64];
    let mut env = [0u8; 64];
    let requests: [Case<'_>; 4] = [
        (
            ExecRequest {
                argv: StrList::build(["echo"], &mut argv).unwrap(),
                env: StrList::EMPTY,
                cwd: "",
                timeout_ms: 0,
                stdin: true,
                credit: 64,
                token: 0,
            },
            |g| *g == Got::Unsupported(Body::Stdin(&[]).kind()),
        ),
        (
            ExecRequest {
                argv: StrList("echo\0"),
                env: StrList::build(["A=1"], &mut env).unwrap(),
                cwd: "",
                timeout_ms: 0,
                stdin: false,
                credit: 64,
                token: 0,
            },
            |g| matches!(g, Got::Error(ErrorCode::INVALID_ARGUMENT, m) if m.contains("environment")),
        ),
        (
            ExecRequest {
                argv: StrList::EMPTY,
                env: StrList::EMPTY,
                cwd: "",
                timeout_ms: 0,
                stdin: false,
                credit: 64,
                token: 0,
            },
            |g| matches!(g, Got::Error(ErrorCode::INVALID_ARGUMENT, _)),
        ),
        (
            ExecRequest {
                argv: StrList(
                    "echo\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0",
                ),
                env: StrList::EMPTY,
                cwd: "",
                timeout_ms: 0,
                stdin: false,
                credit: 64,
                token: 0,
            },
            |g| matches!(g, Got::Error(ErrorCode::TOO_LARGE, _)),
        ),
    ];
    for (req, check) in requests {
        let id = sim.id();
        sim.send(id, Body::Exec(req));
        let got = sim.next(id);
        assert!(check(&got), "{req:?} got {got:?}");
    }
    assert_eq!(sim.agent.commands_running(), 0);
}

#[test]
fn info_prints_identity_limits_and_every_command() {
    let mut sim = Sim::connected();
    // A small credit makes `info` print over many steps.
    let id = sim.exec(&["info"], 0, 16);
    let (out, _, exit) = sim.finish(id);
    let text = String::from_utf8(out).unwrap();
    assert!(exited(0)(&exit));
    for line in [
        "name: bench-1\n",
        "board: testboard\n",
        "serial: SN-0042\n",
        "firmware: 9.9.9\n",
        "boot id: b0070001\n",
        "max commands: 2\n",
        "storage: 1024 bytes, 1024 free, largest file 1023\n",
        "commands:\n",
        "  count N - print 1 to N, one per line\n",
        "  sleep MS - wait MS milliseconds\n",
        "  hash FILE - print the SHA-256 of a stored file\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn hash_prints_the_sha256_of_a_stored_file() {
    let mut sim = Sim::connected();
    let data = common::content(300);
    assert_eq!(sim.push("blob.bin", &data, 128), Got::Ok);
    let id = sim.exec(&["hash", "blob.bin"], 0, 256);
    let (out, _, exit) = sim.finish(id);
    use sha2::Digest;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{}\n", common::hex(&sha2::Sha256::digest(&data)))
    );
    assert!(exited(0)(&exit));
    let id = sim.exec(&["hash", "missing.bin"], 0, 256);
    let (_, err, exit) = sim.finish(id);
    assert_eq!(err, b"hash: no such file\n");
    assert!(exited(1)(&exit));
}
