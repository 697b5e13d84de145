//! The per-device task: open the link, keep the session, reconnect.
//!
//! One task per device owns everything about its link, so a device that
//! misbehaves (a port that vanishes, an agent that stops answering) can only
//! ever stall itself. State changes go through [`Task::set_state`], which
//! logs them: the log reads like the scanner's view of its builders.

use super::connect::{self, describe_link};
use super::power::{power_on, Powered};
use super::{Command, Counters, Device, DeviceState, DeviceStatus, Identity, Shared};
use crate::config::inventory;
use crate::lease::LeaseSlot;
use corral_io::client::{DeviceClient, SessionState};
use corral_io::driver::spawn_link;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, watch};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Starts the task of one device.
pub(crate) fn spawn(cfg: inventory::Device, ids: Arc<AtomicU64>, host_name: String) -> Device {
    let latent = cfg.power_on.is_some();
    let status = DeviceStatus {
        name: cfg.name.clone(),
        labels: cfg.labels.iter().map(|l| l.to_string()).collect(),
        link: describe_link(&cfg.link),
        state: if latent {
            DeviceState::PoweredOff
        } else {
            DeviceState::Connecting
        },
        reason: "gateway starting".into(),
        since: SystemTime::now(),
        identity: None,
        lease: None,
        counters: Counters::default(),
        rtt_us: None,
        latent,
    };
    let (commands, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        name: cfg.name.clone(),
        lease: Arc::new(LeaseSlot::new(&cfg.name, ids)),
        config: Mutex::new(cfg),
        status: watch::channel(status).0,
        client: watch::channel(None).0,
        console: broadcast::channel(1024).0,
        demand: AtomicUsize::new(0),
        demand_changed: tokio::sync::Notify::new(),
        commands,
    });
    let task = Task {
        shared: shared.clone(),
        commands: rx,
        host_name,
        quarantine: None,
        powered: None,
        backoff: MIN_BACKOFF,
        sessions: 0,
    };
    tokio::spawn(task.run());
    Device { shared }
}

struct Task {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    host_name: String,
    quarantine: Option<String>,
    powered: Option<Powered>,
    backoff: Duration,
    sessions: u64,
}

/// How a wait ended.
enum Interrupt {
    /// Time to try again.
    Retry,
    /// Stop the task.
    Shutdown,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Task {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn config(&self) -> inventory::Device {
        lock(&self.shared.config).clone()
    }

    fn set_state(&self, state: DeviceState, reason: impl Into<String>) {
        let reason = reason.into();
        self.shared.status.send_modify(|s| {
            if s.state != state || s.reason != reason {
                tracing::info!(device = %s.name, from = %s.state, to = %state, %reason, "state");
            }
            if s.state != state {
                s.since = SystemTime::now();
            }
            s.state = state;
            s.reason = reason;
        });
    }

    /// Idle, or quarantined if it was put there.
    fn set_working(&self, reason: String) {
        match &self.quarantine {
            Some(q) => self.set_state(DeviceState::Quarantined, q.clone()),
            None => self.set_state(DeviceState::Idle, reason),
        }
    }

    fn demand(&self) -> usize {
        self.shared.demand.load(Ordering::SeqCst)
    }

    /// Applies an order that does not need the link; returns whether to
    /// stop.
    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Shutdown => return true,
            Command::Reconfigure(cfg) => {
                self.shared.status.send_modify(|s| {
                    s.labels = cfg.labels.iter().map(|l| l.to_string()).collect();
                    s.link = describe_link(&cfg.link);
                    s.latent = cfg.power_on.is_some();
                });
                *lock(&self.shared.config) = *cfg;
            }
            Command::Quarantine(reason) => {
                self.quarantine = Some(reason.clone());
                let state = self.shared.status.borrow().state;
                if matches!(state, DeviceState::Idle | DeviceState::Busy) {
                    self.set_state(DeviceState::Quarantined, reason);
                }
            }
            Command::Release => {
                self.quarantine = None;
                if self.shared.status.borrow().state == DeviceState::Quarantined {
                    self.set_state(DeviceState::Idle, "returned to service");
                }
            }
        }
        false
    }

    /// Waits `d`, still obeying orders.
    async fn pause(&mut self, d: Duration) -> Interrupt {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Interrupt::Retry,
                cmd = self.commands.recv() => match cmd {
                    None => return Interrupt::Shutdown,
                    Some(c) => {
                        let relink = matches!(c, Command::Reconfigure(_));
                        if self.apply(c) {
                            return Interrupt::Shutdown;
                        }
                        if relink {
                            return Interrupt::Retry;
                        }
                    }
                },
            }
        }
    }

    async fn run(mut self) {
        loop {
            let cfg = self.config();
            if let Some(power) = &cfg.power_on {
                if self.powered.is_none() {
                    if self.demand() == 0 {
                        self.set_state(
                            DeviceState::PoweredOff,
                            "switched off until a lease or job needs it",
                        );
                        match self.wait_for_demand().await {
                            Interrupt::Retry => continue,
                            Interrupt::Shutdown => break,
                        }
                    }
                    self.set_state(DeviceState::Connecting, "powering on");
                    match power_on(self.name(), power).await {
                        Ok(p) => self.powered = Some(p),
                        Err(e) => {
                            self.set_state(DeviceState::Offline, e);
                            if let Interrupt::Shutdown = {
                                let d = self.next_backoff();
                                self.pause(d).await
                            } {
                                break;
                            }
                            continue;
                        }
                    }
                }
            }
            self.set_state(
                DeviceState::Connecting,
                format!("opening {}", describe_link(&cfg.link)),
            );
            let opened = tokio::select! {
                r = connect::open(&cfg.link) => r,
                cmd = self.commands.recv() => {
                    match cmd {
                        None => break,
                        Some(c) => if self.apply(c) { break },
                    }
                    continue;
                }
            };
            match opened {
                Err(e) => {
                    self.set_state(DeviceState::Offline, e);
                    if let Some(p) = self.powered.as_mut() {
                        if let Some(why) = p.died() {
                            self.set_state(DeviceState::Offline, why);
                            self.powered = None;
                        }
                    }
                    if let Interrupt::Shutdown = {
                        let d = self.next_backoff();
                        self.pause(d).await
                    } {
                        break;
                    }
                }
                Ok(opened) => {
                    if self.sessions > 0 {
                        self.shared
                            .status
                            .send_modify(|s| s.counters.reconnects += 1);
                    }
                    self.sessions += 1;
                    let end = self.session(opened).await;
                    self.shared.client.send_replace(None);
                    match end {
                        SessionEnd::Shutdown => break,
                        SessionEnd::Lost(reason) => {
                            self.set_state(DeviceState::Offline, reason);
                            if let Interrupt::Shutdown = {
                                let d = self.next_backoff();
                                self.pause(d).await
                            } {
                                break;
                            }
                        }
                        SessionEnd::Relink(reason) => {
                            self.set_state(DeviceState::Connecting, reason)
                        }
                        SessionEnd::PowerOff => {}
                    }
                }
            }
        }
        self.shared.client.send_replace(None);
        if let Some(p) = self.powered.take() {
            let cfg = self.config();
            p.power_off(self.name(), cfg.power_off.as_ref()).await;
        }
        self.set_state(DeviceState::Offline, "gateway stopped");
    }

    fn next_backoff(&mut self) -> Duration {
        let d = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        d
    }

    async fn wait_for_demand(&mut self) -> Interrupt {
        let shared = self.shared.clone();
        loop {
            let notified = shared.demand_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.demand() > 0 {
                return Interrupt::Retry;
            }
            tokio::select! {
                _ = &mut notified => {}
                cmd = self.commands.recv() => match cmd {
                    None => return Interrupt::Shutdown,
                    Some(c) => if self.apply(c) { return Interrupt::Shutdown },
                },
            }
        }
    }

    async fn session(&mut self, opened: connect::Opened) -> SessionEnd {
        let (tx, rx) = spawn_link(opened.stream, opened.config, corral_io::new_session_id());
        let client = DeviceClient::new(tx, rx, &self.host_name);
        let mut state = client.state();
        let mut console = client.console();
        let mut stats = tokio::time::interval(Duration::from_secs(1));
        let endpoint = opened.endpoint;
        let mut ready_once = false;
        let mut idle_since: Option<tokio::time::Instant> = None;
        self.set_state(
            DeviceState::Connecting,
            format!("handshaking over {endpoint}"),
        );
        loop {
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        return SessionEnd::Lost("the session ended".into());
                    }
                    let now = state.borrow_and_update().clone();
                    match now {
                        SessionState::Ready(id) => {
                            self.backoff = MIN_BACKOFF;
                            let ident = Identity::from(&*id);
                            let reason = format!("connected over {endpoint}, boot id {}", ident.boot_id);
                            self.shared.status.send_modify(|s| s.identity = Some(ident));
                            self.shared.client.send_replace(Some(client.clone()));
                            ready_once = true;
                            self.set_working(reason);
                        }
                        SessionState::Connecting => {
                            self.shared.client.send_replace(None);
                            if ready_once {
                                self.shared.status.send_modify(|s| s.counters.device_resets += 1);
                                self.set_state(DeviceState::Connecting, "the device restarted; waiting for it to introduce itself");
                            }
                        }
                        SessionState::Unresponsive => {
                            self.shared.client.send_replace(None);
                            self.shared.status.send_modify(|s| s.counters.unresponsive += 1);
                            self.set_state(DeviceState::Offline, format!("no answer over {endpoint}; waiting for it to come back"));
                        }
                        SessionState::Rejected(r) => {
                            self.shared.client.send_replace(None);
                            self.set_state(DeviceState::Offline, format!("incompatible agent: {r}"));
                        }
                        SessionState::Closed(e) => {
                            let why = match e {
                                Some(e) => format!("link to {endpoint} lost: {e}"),
                                None => format!("link to {endpoint} closed"),
                            };
                            return SessionEnd::Lost(why);
                        }
                    }
                }
                text = console.recv() => {
                    if let Ok(text) = text {
                        let _ = self.shared.console.send(text);
                    }
                }
                _ = stats.tick() => {
                    let st = client.link_stats();
                    self.shared.status.send_modify(|s| {
                        s.counters.crc_errors = u64::from(st.bad_frames);
                        s.counters.retransmits = u64::from(st.retransmits);
                        s.counters.timeouts = u64::from(st.timeouts);
                        s.rtt_us = (st.srtt_us > 0).then_some(st.srtt_us);
                    });
                    if let Some(p) = self.powered.as_mut() {
                        if let Some(why) = p.died() {
                            self.powered = None;
                            return SessionEnd::Lost(why);
                        }
                    }
                    // A latent device goes back off once nobody needs it.
                    if self.powered.is_some() {
                        let cfg = self.config();
                        let idle_for = cfg.idle_power_off_after.unwrap_or(Duration::ZERO);
                        if self.demand() == 0 {
                            let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                            if since.elapsed() >= idle_for {
                                if let Some(p) = self.powered.take() {
                                    self.shared.client.send_replace(None);
                                    drop(client);
                                    p.power_off(self.name(), cfg.power_off.as_ref()).await;
                                }
                                return SessionEnd::PowerOff;
                            }
                        } else {
                            idle_since = None;
                        }
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None => return SessionEnd::Shutdown,
                    Some(Command::Reconfigure(cfg)) => {
                        let relink = self.config().link != cfg.link;
                        self.apply(Command::Reconfigure(cfg));
                        if relink {
                            return SessionEnd::Relink("the inventory changed the link; reconnecting".into());
                        }
                    }
                    Some(c) => {
                        if self.apply(c) {
                            return SessionEnd::Shutdown;
                        }
                    }
                },
            }
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    Relink(String),
    PowerOff,
}
