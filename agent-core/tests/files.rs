//! Files through the RAM store, pushed and pulled as the gateway does.

mod common;

use std::time::Duration;

use common::{content, Got, Sim};
use corral_protocol::message::{Body, ErrorCode, FileKind, PutOpen, Write};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[test]
fn put_commit_hash_and_get_round_trip() {
    let mut sim = Sim::connected();
    let data = content(900);
    assert_eq!(sim.push("fw.bin", &data, 200), Got::Ok);

    let id = sim.id();
    sim.send(id, Body::Hash("fw.bin"));
    match sim.next(id) {
        Got::Hash(h) => {
            assert_eq!(h.size, 900);
            assert_eq!(h.sha256, sha(&data));
        }
        other => panic!("expected a hash, got {other:?}"),
    }

    // A small credit makes the pull go in many pieces, all within credit.
    let (got, hash) = sim.pull("/fw.bin", 0, 100).expect("the pull succeeds");
    assert_eq!(got, data);
    assert_eq!((hash.size, hash.sha256), (900, sha(&data)));

    // A pull can resume at an offset; the hash is still the whole file's.
    let (tail, hash) = sim.pull("fw.bin", 850, 4096).unwrap();
    assert_eq!(tail, &data[850..]);
    assert_eq!(hash.sha256, sha(&data));
}

#[test]
fn the_pusher_is_held_to_its_credit() {
    let mut sim = Sim::connected();
    let data = content(600);
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "f",
            size: 600,
            sha256: sha(&data),
            mode: 0o644,
        }),
    );
    let Got::PutReady(ready) = sim.next(id) else {
        panic!("no PutReady")
    };
    assert_eq!(ready.have, 0);
    assert_eq!(ready.credit, 600, "the whole file fits the store's window");
    // Writing past the credit is refused, and the put ends.
    sim.send(
        id,
        Body::Write(Write {
            offset: 0,
            data: &content(601),
        }),
    );
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::CREDIT_EXCEEDED, _)
    ));
    sim.send(id, Body::Commit);
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::NO_SUCH_REQUEST, _)
    ));
}

#[test]
fn an_interrupted_put_resumes_in_a_new_session() {
    let mut sim = Sim::connected();
    let data = content(1000);
    let id = sim.id();
    assert_eq!(sim.push_as(id, "big.bin", &data, 100, 600), Got::Ok);
    sim.run_for(Duration::from_millis(100));
    sim.restart_gateway();

    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "big.bin",
            size: 1000,
            sha256: sha(&data),
            mode: 0o600,
        }),
    );
    match sim.next(id) {
        Got::PutReady(r) => assert_eq!(r.have, 600, "the device kept what it had"),
        other => panic!("expected PutReady, got {other:?}"),
    }
    sim.send(id, Body::Cancel);
    assert_eq!(sim.next(id), Got::Ok);
    // The pusher's helper resumes from `have` by itself.
    assert_eq!(sim.push("big.bin", &data, 100), Got::Ok);
    let (got, _) = sim.pull("big.bin", 0, 4096).unwrap();
    assert_eq!(got, data);
    let id = sim.id();
    sim.send(id, Body::Stat("big.bin"));
    match sim.next(id) {
        Got::Stat(s) => assert_eq!((s.kind, s.size, s.mode), (FileKind::File, 1000, 0o644)),
        other => panic!("expected a stat, got {other:?}"),
    }
}

#[test]
fn a_put_with_the_wrong_hash_is_refused_and_leaves_nothing() {
    let mut sim = Sim::connected();
    let data = content(100);
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "bad.bin",
            size: 100,
            sha256: sha(b"something else"),
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(id), Got::PutReady(_)));
    sim.send(
        id,
        Body::Write(Write {
            offset: 0,
            data: &data,
        }),
    );
    sim.send(id, Body::Commit);
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::HASH_MISMATCH, _)
    ));
    let id = sim.id();
    sim.send(id, Body::Stat("bad.bin"));
    assert!(matches!(sim.next(id), Got::Error(ErrorCode::NOT_FOUND, _)));
    // A file that was there stays as it was.
    assert_eq!(sim.push("keep", b"original", 64), Got::Ok);
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "keep",
            size: 8,
            sha256: [0; 32],
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(id), Got::PutReady(_)));
    sim.send(
        id,
        Body::Write(Write {
            offset: 0,
            data: b"replaced",
        }),
    );
    sim.send(id, Body::Commit);
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::HASH_MISMATCH, _)
    ));
    assert_eq!(sim.pull("keep", 0, 64).unwrap().0, b"original");
}

#[test]
fn puts_that_cannot_fit_are_refused_before_any_data() {
    let mut sim = Sim::connected();
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "huge",
            size: 1 << 20,
            sha256: [0; 32],
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(id), Got::Error(ErrorCode::TOO_LARGE, _)));
    assert_eq!(sim.push("a", &content(700), 256), Got::Ok);
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "b",
            size: 400,
            sha256: [0; 32],
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(id), Got::Error(ErrorCode::NO_SPACE, _)));
    // The store's limits are reported in the handshake too.
    let hello = sim.id();
    sim.send(
        hello,
        Body::Hello(corral_protocol::message::HostHello {
            name: "gw",
            software: "test",
        }),
    );
    match sim.next(hello) {
        Got::DeviceInfo(info) => {
            assert_eq!(info.limits.storage_bytes, 1024);
            assert_eq!(info.limits.storage_free, 1024 - 701);
        }
        other => panic!("expected DeviceInfo, got {other:?}"),
    }
}

#[test]
fn stat_list_and_remove() {
    let mut sim = Sim::connected();
    assert_eq!(sim.push("one", b"1", 64), Got::Ok);
    assert_eq!(sim.push("two", b"22", 64), Got::Ok);
    let list = |sim: &mut Sim| {
        let id = sim.id();
        sim.send(id, Body::List("/"));
        let mut names = Vec::new();
        loop {
            match sim.next(id) {
                Got::Entry(name, stat) => names.push((name, stat.size)),
                Got::Ok => return names,
                other => panic!("unexpected {other:?} in a listing"),
            }
        }
    };
    assert_eq!(
        list(&mut sim),
        [("one".to_string(), 1), ("two".to_string(), 2)]
    );

    let id = sim.id();
    sim.send(id, Body::Stat("/"));
    assert!(matches!(sim.next(id), Got::Stat(s) if s.kind == FileKind::Dir));

    let id = sim.id();
    sim.send(id, Body::Remove("one"));
    assert_eq!(sim.next(id), Got::Ok);
    assert_eq!(list(&mut sim), [("two".to_string(), 2)]);

    let id = sim.id();
    sim.send(id, Body::Remove("one"));
    assert!(matches!(sim.next(id), Got::Error(ErrorCode::NOT_FOUND, _)));
    let id = sim.id();
    sim.send(id, Body::List("two"));
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::NOT_A_DIRECTORY, _)
    ));
    let id = sim.id();
    sim.send(id, Body::Stat("sub/dir"));
    assert!(matches!(
        sim.next(id),
        Got::Error(ErrorCode::INVALID_ARGUMENT, _)
    ));
    assert!(matches!(
        sim.pull("one", 0, 64),
        Err(Got::Error(ErrorCode::NOT_FOUND, _))
    ));
    assert!(matches!(
        sim.pull("two", 3, 64),
        Err(Got::Error(ErrorCode::BAD_OFFSET, _))
    ));
}

#[test]
fn one_transfer_of_each_kind_at_a_time() {
    let mut sim = Sim::connected();
    assert_eq!(sim.push("f", &content(500), 500), Got::Ok);
    let a = sim.id();
    sim.send(
        a,
        Body::PutOpen(PutOpen {
            path: "g",
            size: 10,
            sha256: [0; 32],
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(a), Got::PutReady(_)));
    let b = sim.id();
    sim.send(
        b,
        Body::PutOpen(PutOpen {
            path: "h",
            size: 10,
            sha256: [0; 32],
            mode: 0o644,
        }),
    );
    assert!(matches!(sim.next(b), Got::Error(ErrorCode::BUSY, _)));

    // A pull with no credit waits; a second one is busy; cancel ends the first.
    let c = sim.id();
    sim.send(
        c,
        Body::Get(corral_protocol::message::Get {
            path: "f",
            offset: 0,
            credit: 0,
        }),
    );
    let d = sim.id();
    sim.send(d, Body::List(""));
    assert!(matches!(sim.next(d), Got::Error(ErrorCode::BUSY, _)));
    sim.run_for(Duration::from_millis(200));
    assert!(sim.take(c).is_none(), "nothing is sent without credit");
    sim.send(c, Body::Cancel);
    assert_eq!(sim.next(c), Got::Ok);
    sim.send(a, Body::Cancel);
    assert_eq!(sim.next(a), Got::Ok);
}

#[test]
fn a_busy_store_pauses_the_pusher_through_credit() {
    let mut sim = Sim::connected();
    sim.agent.platform_mut().files.room = 300;
    let data = content(1000);
    let id = sim.id();
    sim.send(
        id,
        Body::PutOpen(PutOpen {
            path: "slow.bin",
            size: 1000,
            sha256: sha(&data),
            mode: 0o644,
        }),
    );
    let Got::PutReady(ready) = sim.next(id) else {
        panic!("no PutReady")
    };
    assert_eq!(
        ready.credit, 300,
        "no more credit than the store has room for"
    );
    sim.send(
        id,
        Body::Write(Write {
            offset: 0,
            data: &data[..300],
        }),
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.take(id), None, "no credit while the store is busy");
    // The erase finished: room again, and the push completes.
    sim.agent.platform_mut().files.room = u64::MAX;
    let Got::Credit(n) = sim.next(id) else {
        panic!("no credit after the store freed up")
    };
    assert_eq!(n, 700);
    sim.send(
        id,
        Body::Write(Write {
            offset: 300,
            data: &data[300..],
        }),
    );
    sim.send(id, Body::Commit);
    assert_eq!(sim.next(id), Got::Ok);
    assert_eq!(sim.pull("slow.bin", 0, 4096).unwrap().0, data);
}
