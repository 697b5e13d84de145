//! Helpers shared by the fault link tests: a "gateway" and a "device" on loopback
//! TCP with a link between them, random payloads, and bounded waiting.

use std::future::Future;
use std::time::Duration;

use corral_hil_tests::faultlink::{Endpoint, FaultLink, FaultLinkHandle, Faults};
use rand::{RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any single step of a test may take before it counts as hung. Only a
/// guard against hanging CI, never a measure of speed.
pub const GUARD: Duration = Duration::from_secs(60);

/// Runs `future`, failing the test if it hangs.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {GUARD:?}"))
}

/// Polls `condition` until it holds, failing the test if it never does.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// `n` reproducible random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// A link between a "gateway" (connected to side a) and a "device" (a TCP server
/// the link dials as side b), both connected.
pub struct TcpRig {
    pub link: FaultLinkHandle,
    pub gateway: TcpStream,
    pub device: TcpStream,
    pub device_listener: TcpListener,
}

impl TcpRig {
    pub async fn start(faults: Faults, seed: u64) -> TcpRig {
        let device_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link = FaultLink::start(
            Endpoint::TcpListen("127.0.0.1:0".into()),
            Endpoint::Tcp(device_listener.local_addr().unwrap().to_string()),
            faults,
            seed,
        )
        .await
        .unwrap();
        let (gateway, device) = connect(&link, &device_listener).await;
        TcpRig {
            link,
            gateway,
            device,
            device_listener,
        }
    }
}

/// Connects a new gateway to the link's side a and accepts the link's connection
/// on the device listener.
pub async fn connect(link: &FaultLinkHandle, device: &TcpListener) -> (TcpStream, TcpStream) {
    let gateway = TcpStream::connect(link.a_addr().socket_addr().unwrap())
        .await
        .unwrap();
    let (device, _) = within("the link dialling the device", device.accept())
        .await
        .unwrap();
    (gateway, device)
}

/// Sends `input` from gateway to device through a link with `faults` on a→b, closes
/// the gateway's sending side, and returns everything the device received.
pub async fn through_a2b(faults: Faults, seed: u64, input: &[u8]) -> (Vec<u8>, FaultLinkHandle) {
    let rig = TcpRig::start(faults, seed).await;
    let (_gateway_read, mut gateway_write) = rig.gateway.into_split();
    let mut device = rig.device;
    let send = async {
        gateway_write.write_all(input).await.unwrap();
        gateway_write.shutdown().await.unwrap();
    };
    let mut received = Vec::new();
    let receive = device.read_to_end(&mut received);
    let ((), read) = within("sending a→b", async { tokio::join!(send, receive) }).await;
    read.unwrap();
    (received, rig.link)
}
