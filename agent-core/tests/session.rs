//! The session as a whole: handshake, identity, unknown requests, reset,
//! gateway restarts, logs, a noisy line, and the memory budget.

mod common;

use std::time::Duration;

use common::{content, Got, Sim, TestAgent, TestBoard, BOOT_ID};
use corral_agent_core::{
    Agent, DeviceAgent, Identity, NoFiles, Platform, RamStore, DEVICE_STORAGE,
};
use corral_protocol::features;
use corral_protocol::link::Config;
use corral_protocol::message::{Body, ErrorCode, ExitReason, HostHello, LogLevel};
use corral_protocol::sim::Faults;
use corral_protocol::Instant;

fn hello(sim: &mut Sim) -> Got {
    let id = sim.id();
    sim.send(
        id,
        Body::Hello(HostHello {
            name: "gw-1",
            software: "corral 0.1",
        }),
    );
    sim.next(id)
}

#[test]
fn hello_is_answered_with_identity_limits_and_commands() {
    let mut sim = Sim::connected();
    match hello(&mut sim) {
        Got::DeviceInfo(info) => {
            assert_eq!(
                (
                    info.name.as_str(),
                    info.board.as_str(),
                    info.serial.as_str(),
                    info.firmware.as_str()
                ),
                ("bench-1", "testboard", "SN-0042", "9.9.9")
            );
            assert_eq!(info.boot_id, BOOT_ID);
            let limits = info.limits;
            assert_eq!(limits.max_commands, 2);
            assert_eq!(
                (limits.storage_bytes, limits.storage_free, limits.max_file),
                (1024, 1024, 1023)
            );
            assert_eq!(
                info.commands,
                [
                    "count",
                    "yell",
                    "loud-echo",
                    "info",
                    "echo",
                    "sleep",
                    "hash"
                ]
            );
        }
        other => panic!("expected DeviceInfo, got {other:?}"),
    }
}

#[test]
fn the_handshake_offers_only_what_the_agent_does() {
    let sim = Sim::connected();
    let session = sim.session.expect("connected");
    assert_eq!(
        session.peer_session, BOOT_ID,
        "the boot id is the session id"
    );
    assert_eq!(
        session.features,
        features::EXEC | features::FILES | features::RESET | features::LOGS,
        "no STDIN, no ATTACH"
    );

    // Without a file store, FILES is not offered and file requests are
    // unsupported.
    struct Bare;
    impl Platform for Bare {
        type Files = NoFiles;
        fn identity(&self) -> Identity<'_> {
            Identity {
                name: "bare",
                board: "b",
                serial: "",
                firmware: "1",
                boot_id: 9,
            }
        }
        fn files(&mut self) -> Option<&mut NoFiles> {
            None
        }
        fn reset(&mut self) {}
    }
    let agent = Agent::<Bare, Vec<u8>>::new(
        Config::device(),
        vec![0; DEVICE_STORAGE],
        Bare,
        Instant::ZERO,
    )
    .unwrap();
    assert_eq!(
        agent.link().config().features,
        features::EXEC | features::RESET | features::LOGS
    );
}

#[test]
fn ping_is_answered_with_the_same_value() {
    let mut sim = Sim::connected();
    let id = sim.id();
    sim.send(id, Body::Ping(0xfeed_f00d));
    assert_eq!(sim.next(id), Got::Pong(0xfeed_f00d));
}

#[test]
fn unknown_and_unhandled_kinds_are_unsupported_and_bad_bodies_invalid() {
    let mut sim = Sim::connected();
    // Request id 5 (varint), kind 99 (varint): a kind from a future version.
    sim.send_raw(&[5, 99, 1, 2, 3]);
    assert_eq!(sim.next(5), Got::Unsupported(99));
    // Kind 2 (Ping) without its value.
    sim.send_raw(&[6, 2]);
    assert!(matches!(
        sim.next(6),
        Got::Error(ErrorCode::INVALID_ARGUMENT, _)
    ));
    // Known kinds the device does not serve.
    let id = sim.id();
    sim.send(id, Body::Attach(1));
    assert_eq!(sim.next(id), Got::Unsupported(Body::Attach(0).kind()));
    let id = sim.id();
    sim.send(id, Body::Stdin(b"x"));
    assert_eq!(sim.next(id), Got::Unsupported(Body::Stdin(b"").kind()));
    // Replies are never answered (that could loop), and the agent goes on.
    let id = sim.id();
    sim.send(id, Body::Unsupported(3));
    sim.send(id, Body::Ok);
    sim.send(id, Body::Ping(1));
    assert_eq!(sim.next(id), Got::Pong(1));
}

#[test]
fn reset_is_called_after_the_ok_reached_the_gateway() {
    // A slow way back, so that a reset soon after sending the Ok would come
    // before the gateway has it.
    let up = Faults {
        delay: Duration::from_millis(2),
        ..Faults::default()
    };
    let down = Faults {
        delay: Duration::from_millis(20),
        ..Faults::default()
    };
    let mut sim = Sim::with_faults(up, down);
    sim.connect();
    let cmd = sim.exec(&["sleep", "10000"], 0, 64);
    assert_eq!(sim.next(cmd), Got::Started);
    let id = sim.id();
    sim.send(id, Body::Reset);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.agent.reset_pending()));
    // More traffic wakes the device up again while its Ok is on the way.
    let ping = sim.id();
    sim.send(ping, Body::Ping(1));
    assert!(
        sim.run_until(Duration::from_secs(5), |s| !s.resets.is_empty()),
        "reset was called"
    );
    assert_eq!(
        sim.resets,
        [true],
        "the gateway had the Ok before the reset"
    );
    assert_eq!(
        sim.agent.commands_running(),
        0,
        "nothing runs on into a reset"
    );
}

#[test]
fn reset_goes_ahead_when_the_gateway_stops_answering() {
    let mut sim = Sim::connected();
    // Nothing the device sends arrives any more: its Ok is never
    // acknowledged.
    sim.set_down_faults(Faults {
        drop: 1.0,
        ..Faults::default()
    });
    let id = sim.id();
    sim.send(id, Body::Reset);
    assert!(sim.run_until(Duration::from_secs(1), |s| s.agent.reset_pending()));
    let asked = sim.now;
    assert!(sim.run_until(Duration::from_secs(10), |s| !s.resets.is_empty()));
    assert!(
        sim.now - asked >= corral_agent_core::RESET_GRACE / 2,
        "it waited for the acknowledgement first"
    );
}

#[test]
fn a_gateway_restart_abandons_everything_in_flight() {
    let mut sim = Sim::connected();
    let a = sim.exec(&["sleep", "60000"], 0, 64);
    let b = sim.exec(&["count", "100000"], 0, 64);
    assert_eq!(sim.next(a), Got::Started);
    assert_eq!(sim.next(b), Got::Started);
    sim.restart_gateway();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.agent.commands_running(),
        0,
        "the old session's commands are stopped"
    );
    assert!(
        sim.inbox.is_empty(),
        "nothing of the old session reaches the new one: {:?}",
        sim.inbox
    );
    let id = sim.exec(&["echo", "fresh"], 0, 64);
    let (out, _, exit) = sim.finish(id);
    assert_eq!(out, b"fresh\n");
    assert!(matches!(
        exit,
        Got::Exit {
            reason: ExitReason::Exited,
            code: 0,
            ..
        }
    ));
}

#[test]
fn log_lines_reach_the_gateway() {
    let mut sim = Sim::connected();
    sim.agent.log(LogLevel::WARN, "battery low").unwrap();
    assert_eq!(
        sim.next(0),
        Got::Log(LogLevel::WARN.0, "battery low".into())
    );
}

#[test]
fn everything_works_over_a_noisy_slow_line() {
    let noisy = Faults {
        baud: Some(115_200),
        delay: Duration::from_millis(2),
        drop: 0.002,
        corrupt: 0.002,
        duplicate: 0.01,
        ..Faults::default()
    };
    let mut sim = Sim::with_faults(noisy.clone(), noisy);
    sim.connect();
    assert!(matches!(hello(&mut sim), Got::DeviceInfo(_)));
    let id = sim.exec(&["count", "300"], 0, 64);
    let (out, _, _) = sim.finish(id);
    let expected: String = (1..=300).map(|n| format!("{n}\n")).collect();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    let data = content(1000);
    assert_eq!(sim.push("noisy.bin", &data, 256), Got::Ok);
    let (back, _) = sim.pull("noisy.bin", 0, 512).unwrap();
    assert_eq!(back, data);
    let id = sim.exec(&["sleep", "1000"], 200, 64);
    let (_, _, exit) = sim.finish(id);
    assert!(matches!(
        exit,
        Got::Exit {
            reason: ExitReason::TimedOut,
            ..
        }
    ));
    let (up, down) = sim.line_stats();
    assert!(
        up.dropped + up.corrupted > 0 && down.dropped + down.corrupted > 0,
        "the line really was noisy: {up:?} {down:?}"
    );
}

/// The firmware's static RAM budget is 8 KiB for everything: board layer
/// (~0.3 KiB), the main loop's buffers (64 + 600 bytes), and the agent with
/// its link and, inside the platform here, a 1 KiB RAM store. Host sizes are
/// at least the Cortex-M's (same alignment of u64, wider pointers).
#[test]
fn the_default_configuration_fits_the_ram_budget() {
    struct Board {
        files: RamStore<4, 1024>,
    }
    impl Platform for Board {
        type Files = RamStore<4, 1024>;
        fn identity(&self) -> Identity<'_> {
            Identity {
                name: "",
                board: "",
                serial: "",
                firmware: "",
                boot_id: 1,
            }
        }
        fn files(&mut self) -> Option<&mut Self::Files> {
            Some(&mut self.files)
        }
        fn reset(&mut self) {}
    }
    let agent = std::mem::size_of::<DeviceAgent<Board>>();
    let board_layer = 300;
    let main_loop = 64 + 600;
    assert!(
        agent + board_layer + main_loop <= 8 * 1024,
        "agent {agent} B + board {board_layer} B + buffers {main_loop} B exceed 8 KiB"
    );
    assert_eq!(
        std::mem::size_of::<TestAgent>(),
        std::mem::size_of::<DeviceAgent<TestBoard>>()
    );
}

#[test]
fn random_messages_never_break_the_agent() {
    let mut sim = Sim::connected();
    assert_eq!(sim.push("f", &content(200), 200), Got::Ok);
    let mut rng = corral_protocol::sim::Rng::new(7);
    for round in 0..40 {
        for _ in 0..50 {
            // A small request id, a kind near the known ones (some beyond),
            // and a random body: most fail to decode, some are valid
            // requests with odd values (credits, cancels, removes, gets).
            let kind = match rng.below(34) as u8 {
                // A reset would make the agent ignore the rest of the round.
                26 => 27,
                k => k,
            };
            let mut msg = vec![rng.below(8) as u8, kind];
            let len = rng.below(24) as usize;
            msg.extend((0..len).map(|_| rng.next_u64() as u8));
            sim.send_raw(&msg);
        }
        sim.run_for(Duration::from_millis(200));
        let id = 1000 + round;
        sim.send(id, Body::Ping(round.into()));
        assert_eq!(
            sim.next(id),
            Got::Pong(round.into()),
            "the agent still answers after round {round}"
        );
    }
    assert_eq!(sim.agent.platform().resets, 0);
    let replies = sim.log.iter().filter(|m| m.id < 8).count();
    assert!(
        replies > 1000,
        "most random requests get an answer ({replies})"
    );
}
