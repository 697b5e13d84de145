//! The control channel, driven as a person or a script would drive it.

use std::time::Duration;

use corral_hil_tests::faultlink::{control, Faults, LinkState};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{within, TcpRig};

/// One side of a control connection: sends a line, reads the reply.
struct Client<R, W> {
    replies: tokio::io::Lines<BufReader<R>>,
    commands: W,
}

impl<R: tokio::io::AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin> Client<R, W> {
    async fn ask(&mut self, line: &str) -> String {
        self.commands
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.next_line().await
    }

    async fn next_line(&mut self) -> String {
        within("a reply", self.replies.next_line())
            .await
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn commands_change_the_running_link_and_bad_ones_get_an_error_line() {
    let rig = TcpRig::start(Faults::none(), 40).await;
    let link = rig.link.clone();
    let (client, server) = tokio::io::duplex(64 << 10);
    let (server_read, server_write) = tokio::io::split(server);
    let serving =
        tokio::spawn(async move { control::serve(&link, server_read, server_write).await });
    let (client_read, client_write) = tokio::io::split(client);
    let mut client = Client {
        replies: BufReader::new(client_read).lines(),
        commands: client_write,
    };
    assert_eq!(
        client.ask("set a2b corrupt 0.01 delay 20ms").await,
        "ok a2b corrupt=0.01 delay=20ms"
    );
    let faults = rig.link.faults();
    assert_eq!(faults.a2b.corrupt, 0.01);
    assert_eq!(faults.a2b.delay, Duration::from_millis(20));
    assert_eq!(faults.b2a, Faults::none());

    assert_eq!(client.ask("set baud=9600").await, "ok both baud=9600");
    assert_eq!(rig.link.faults().b2a.baud, Some(9600));

    let reply = client.ask("set a2b corrupt 7").await;
    assert!(
        reply.starts_with("error: ") && reply.contains("between 0 and 1"),
        "{reply}"
    );
    let reply = client.ask("launch missiles").await;
    assert!(
        reply.starts_with("error: unknown command `launch`"),
        "{reply}"
    );
    let reply = client.ask(&"x".repeat(10_000)).await;
    assert!(reply.starts_with("error: line longer than"), "{reply}");
    // Still alive and unchanged after the bad commands.
    assert_eq!(rig.link.faults().a2b.corrupt, 0.01);

    let faults: serde_json::Value = serde_json::from_str(&client.ask("faults").await).unwrap();
    assert_eq!(faults["a2b"]["delay"], "20ms");
    assert_eq!(faults["b2a"]["baud"], 9600);

    assert_eq!(client.ask("cut 1h").await, "ok cut for 1h");
    let stats: serde_json::Value = serde_json::from_str(&client.ask("stats").await).unwrap();
    assert_eq!(stats["state"], "cut");
    assert_eq!(stats["seed"], 40);
    assert!(stats["a2b"]["bytes_in"].is_u64());
    assert!(client.ask("restore").await.starts_with("ok restored"));
    assert_eq!(rig.link.stats().state, LinkState::Up);

    assert_eq!(client.ask("clear").await, "ok both cleared");
    assert_eq!(rig.link.faults().a2b, Faults::none());
    // `help` is the one reply longer than a line; it ends with an example.
    let mut help = vec![client.ask("help").await];
    while !help.last().unwrap().starts_with("example:") {
        help.push(client.next_line().await);
    }
    let help = help.join("\n");
    assert!(
        help.starts_with("commands") && help.contains("cut forever"),
        "{help}"
    );

    assert_eq!(client.ask("shutdown").await, "ok shutting down");
    within("serve to end after shutdown", serving)
        .await
        .unwrap()
        .unwrap();
    within("the link to stop", rig.link.stopped()).await;
}

#[tokio::test]
async fn the_control_socket_serves_several_clients_and_goes_away_with_the_link() {
    let rig = TcpRig::start(Faults::none(), 41).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let server = control::serve_unix(rig.link.clone(), &path).unwrap();
    for (command, expected) in [
        ("set drop 0.1", "ok both drop=0.1"),
        ("cut", "error: cut needs"),
    ] {
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        write
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let reply = within("a reply", BufReader::new(read).lines().next_line())
            .await
            .unwrap()
            .unwrap();
        assert!(reply.starts_with(expected), "{command}: {reply}");
    }
    assert_eq!(rig.link.faults().a2b.drop, 0.1);
    rig.link.shutdown().await;
    within("the control server to stop", server).await.unwrap();
    assert!(!path.exists(), "the control socket must be removed");
}
