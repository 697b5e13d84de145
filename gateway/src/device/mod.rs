//! Devices: what the gateway knows about each one, and the handle the API,
//! the CLI and the job runner use.
//!
//! Each device has one task ([`task`]) that owns its link: it opens the port
//! or connection, keeps the session up, reconnects with backoff, and
//! publishes a [`DeviceStatus`] — the Launchpad build-farm scanner's view of
//! its builders, live. Everything else reads that status and borrows the
//! device's [`DeviceClient`] under a lease.

mod connect;
mod power;
pub(crate) mod recovery;
pub mod task;

use crate::config::inventory;
use crate::lease::{LeaseInfo, LeaseSlot};
use corral_io::client::{DeviceClient, DeviceIdentity};
use serde::Serialize;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, watch};

pub use connect::describe_link;

/// Where a device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not reachable (unplugged, agent not running, link down).
    Offline,
    /// Opening the link or waiting for the handshake.
    Connecting,
    /// Connected and free.
    Idle,
    /// Connected and leased.
    Busy,
    /// Connected but taking no work until a health check passes.
    Quarantined,
    /// A latent device that is switched off until someone needs it.
    PoweredOff,
}

impl DeviceState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Offline => "offline",
            DeviceState::Connecting => "connecting",
            DeviceState::Idle => "idle",
            DeviceState::Busy => "busy",
            DeviceState::Quarantined => "quarantined",
            DeviceState::PoweredOff => "powered_off",
        }
    }
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Link counters since the gateway started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Times the link was (re)opened after the first.
    pub reconnects: u64,
    /// Times the device restarted under an open link.
    pub device_resets: u64,
    /// Frames dropped for a bad CRC (line noise).
    pub crc_errors: u64,
    /// Segments sent again.
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Times the device stopped answering.
    pub unresponsive: u64,
    /// Soft resets the recovery ladder sent.
    pub soft_resets: u64,
    /// Power cycles the recovery ladder ran.
    pub power_cycles: u64,
    /// Times the device was quarantined.
    pub quarantines: u64,
}

/// The device's identity as reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Name the agent gives itself.
    pub name: String,
    /// Board or machine.
    pub board: String,
    /// Serial number.
    pub serial: String,
    /// Firmware or agent version.
    pub firmware: String,
    /// Boot id, hex.
    pub boot_id: String,
    /// Commands that may run at once.
    pub max_commands: u16,
    /// Storage capacity in bytes.
    pub storage_bytes: u64,
    /// Free storage in bytes.
    pub storage_free: u64,
    /// Largest file.
    pub max_file: u64,
    /// Built-in commands (empty: any program).
    pub commands: Vec<String>,
}

impl From<&DeviceIdentity> for Identity {
    fn from(d: &DeviceIdentity) -> Self {
        Identity {
            name: d.name.clone(),
            board: d.board.clone(),
            serial: d.serial.clone(),
            firmware: d.firmware.clone(),
            boot_id: format!("{:08x}", d.boot_id),
            max_commands: d.limits.max_commands,
            storage_bytes: d.limits.storage_bytes,
            storage_free: d.limits.storage_free,
            max_file: d.limits.max_file,
            commands: d.commands.clone(),
        }
    }
}

/// Everything known about a device, as `corral devices` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    /// Inventory name.
    pub name: String,
    /// Labels from the inventory.
    pub labels: Vec<String>,
    /// The link, described ("serial /dev/ttyACM0 115200", "tcp 10.0.0.5:7878").
    pub link: String,
    /// State.
    pub state: DeviceState,
    /// Why it is in that state (the last change).
    pub reason: String,
    /// When the state last changed.
    #[serde(with = "crate::report::rfc3339")]
    pub since: SystemTime,
    /// The agent's identity, once it introduced itself.
    pub identity: Option<Identity>,
    /// The current lease.
    pub lease: Option<LeaseInfo>,
    /// Link counters.
    pub counters: Counters,
    /// Smoothed round-trip time of the link in microseconds, if measured.
    pub rtt_us: Option<u32>,
    /// Whether the device is switched on and off by the gateway.
    pub latent: bool,
}

/// Why a device cannot be used right now.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// Not connected within the wait.
    #[error("device {name} is {state}: {reason}")]
    Unavailable {
        /// The device.
        name: String,
        /// Its state.
        state: DeviceState,
        /// Why.
        reason: String,
    },
}

/// Orders to a device task.
#[derive(Debug)]
pub(crate) enum Command {
    /// The inventory entry changed.
    Reconfigure(Box<inventory::Device>),
    /// Stop and release the port.
    Shutdown,
    /// Take no work until a health check passes.
    Quarantine(String),
    /// Back to work.
    Release,
    /// A request to the device went unanswered while its link was up.
    Unanswered(String),
    /// The health check of a quarantined device ended: what it showed.
    HealthChecked(Result<String, String>),
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) config: Mutex<inventory::Device>,
    pub(crate) status: watch::Sender<DeviceStatus>,
    pub(crate) client: watch::Sender<Option<DeviceClient>>,
    pub(crate) console: broadcast::Sender<Vec<u8>>,
    pub(crate) lease: Arc<LeaseSlot>,
    /// How many users currently need a latent device switched on.
    pub(crate) demand: AtomicUsize,
    pub(crate) demand_changed: tokio::sync::Notify,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A device of the gateway. Cheap to clone.
#[derive(Clone)]
pub struct Device {
    pub(crate) shared: Arc<Shared>,
}

impl Device {
    /// Its inventory name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its inventory entry.
    pub fn config(&self) -> inventory::Device {
        lock(&self.shared.config).clone()
    }

    /// Its current status.
    pub fn status(&self) -> DeviceStatus {
        let mut s = self.shared.status.borrow().clone();
        s.lease = self.shared.lease.current();
        if s.lease.is_some() && s.state == DeviceState::Idle {
            s.state = DeviceState::Busy;
        }
        s
    }

    /// Watches status changes.
    pub fn watch(&self) -> watch::Receiver<DeviceStatus> {
        self.shared.status.subscribe()
    }

    /// Console text from the device, across reconnects.
    pub fn console(&self) -> broadcast::Receiver<Vec<u8>> {
        self.shared.console.subscribe()
    }

    /// The lease slot.
    pub fn lease(&self) -> Arc<LeaseSlot> {
        self.shared.lease.clone()
    }

    /// Says that someone needs the device: a latent device is switched on
    /// while at least one [`Demand`] lives.
    pub fn demand(&self) -> Demand {
        self.shared
            .demand
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.shared.demand_changed.notify_waiters();
        Demand {
            shared: self.shared.clone(),
        }
    }

    /// The session with the device, waiting up to `wait` for it to be
    /// connected. Does not take a lease: callers hold one.
    pub async fn client(&self, wait: Duration) -> Result<DeviceClient, DeviceError> {
        let mut rx = self.shared.client.subscribe();
        let got = tokio::time::timeout(wait, async {
            loop {
                if let Some(c) = rx.borrow_and_update().clone() {
                    return Some(c);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match got {
            Ok(Some(c)) => Ok(c),
            _ => {
                let s = self.status();
                Err(DeviceError::Unavailable {
                    name: self.shared.name.clone(),
                    state: s.state,
                    reason: s.reason,
                })
            }
        }
    }

    /// Takes the device out of service until [`release`](Self::release).
    pub fn quarantine(&self, reason: &str) {
        let _ = self
            .shared
            .commands
            .send(Command::Quarantine(reason.to_string()));
    }

    /// Returns a quarantined device to service.
    pub fn release(&self) {
        let _ = self.shared.commands.send(Command::Release);
    }

    /// Tells the device's task that a request to it went unanswered (a
    /// command's exit report or a cancel that never came, a request that
    /// timed out). If the link is up and a ping goes unanswered too, the
    /// recovery ladder starts; otherwise nothing happens.
    pub fn report_unanswered(&self, what: &str) {
        let _ = self
            .shared
            .commands
            .send(Command::Unanswered(what.to_string()));
    }

    pub(crate) fn reconfigure(&self, cfg: inventory::Device) {
        let _ = self
            .shared
            .commands
            .send(Command::Reconfigure(Box::new(cfg)));
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.shared.commands.send(Command::Shutdown);
    }
}

/// Keeps a latent device switched on; see [`Device::demand`].
pub struct Demand {
    shared: Arc<Shared>,
}

impl Drop for Demand {
    fn drop(&mut self) {
        self.shared
            .demand
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.shared.demand_changed.notify_waiters();
    }
}
