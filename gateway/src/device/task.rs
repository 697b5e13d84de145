//! The per-device task: open the link, keep the session, reconnect.
//!
//! One task per device owns everything about its link, so a device that
//! misbehaves (a port that vanishes, an agent that stops answering) can only
//! ever stall itself. State changes go through [`Task::set_state`], which
//! logs them: the log reads like the scanner's view of its builders.
//!
//! The task also climbs the recovery ladder ([`super::recovery`]) when a
//! device it expects to answer does not — one that was connected, or that it
//! switched on — and runs the health check of a quarantined device whenever
//! it connects, and every `health_check_every` until one passes.

use super::connect::{self, describe_link};
use super::power::{power_on, Powered};
use super::recovery::{self, Ladder, Rung};
use super::{Command, Counters, Device, DeviceState, DeviceStatus, Identity, Shared};
use crate::config::inventory;
use crate::config::job::Job;
use crate::lease::{LeaseGuard, LeaseSlot};
use crate::report::{human_duration, JobOutcome, Outcome};
use corral_io::client::{DeviceClient, SessionState};
use corral_io::driver::spawn_link;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// How long a ping, a reset request or a health check's wait for the lease
/// may take.
const QUICK: Duration = Duration::from_secs(5);
/// Time between `power_off` and `power_on` in a power cycle.
const POWER_CYCLE_GAP: Duration = Duration::from_millis(500);

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
        trouble: None,
        recover_at: None,
        ladder: None,
        health_at: None,
        health_running: false,
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
    /// What went wrong with a device that is expected to answer and does
    /// not (yet): the ladder's trigger.
    trouble: Option<String>,
    /// When to climb the next rung (or start the ladder).
    recover_at: Option<Instant>,
    /// The climb under way.
    ladder: Option<Ladder>,
    /// When to try a quarantined device's health check again.
    health_at: Option<Instant>,
    health_running: bool,
}

/// What a climb of one rung needs next.
enum Climbed {
    /// Wait for the device to come back.
    Wait,
    /// Cycle the power (the session must end first).
    PowerCycle,
    /// Quarantined.
    Quarantined,
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
        let mut reason = reason.into();
        let mut state = state;
        if let Some(q) = &self.quarantine {
            // The link comes and goes; what matters is why the device takes
            // no work.
            if matches!(
                state,
                DeviceState::Offline | DeviceState::Connecting | DeviceState::Idle
            ) {
                tracing::debug!(device = %self.shared.name, link = %reason, "quarantined device's link");
                state = DeviceState::Quarantined;
                reason = q.clone();
            }
        }
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

    /// Idle, or quarantined (running its health check) if it was put there.
    fn set_working(&mut self, reason: String) {
        let mut reason = reason;
        if let Some(ladder) = self.ladder.take() {
            tracing::info!(device = %self.shared.name, trouble = ladder.trigger(), how = ladder.recovered(), "recovered");
            reason = format!("{reason}; {} ({})", ladder.recovered(), ladder.trigger());
        }
        self.trouble = None;
        self.recover_at = None;
        match self.quarantine.clone() {
            Some(_) => self.start_health_check(),
            None => self.set_state(DeviceState::Idle, reason),
        }
    }

    /// Whether a latent device must be on even if nobody asked for it: the
    /// ladder or the health check needs it.
    fn needs_power(&self) -> bool {
        self.demand() > 0 || self.ladder.is_some() || self.quarantine.is_some()
    }

    /// The device should answer and does not: start the recovery clock
    /// unless it already runs (or the device is quarantined, where only the
    /// health check counts). A device that lost its link gets
    /// `recover_after`; one just switched on gets `recovery_wait`, as after
    /// a power cycle.
    fn expect(&mut self, what: String, switched_on: bool) {
        if self.quarantine.is_some() || self.recover_at.is_some() {
            return;
        }
        let cfg = self.config();
        let after = if switched_on {
            cfg.recovery_wait
        } else {
            cfg.recover_after
        };
        tracing::debug!(device = %self.shared.name, %what, after = %human_duration(after), "waiting for the device to answer");
        self.trouble = Some(format!("{what}, not back within {}", human_duration(after)));
        self.recover_at = Some(Instant::now() + after);
    }

    /// The device is meant to be silent (switched off, gateway stopping).
    fn expect_nothing(&mut self) {
        self.trouble = None;
        self.recover_at = None;
        self.ladder = None;
    }

    /// The next deadline of the ladder or of the health check.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.recover_at, self.health_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn due(t: Option<Instant>) -> bool {
        t.is_some_and(|t| t <= Instant::now())
    }

    /// Climbs one rung of the ladder. `client` is the session if the link is
    /// up (a soft reset needs it).
    async fn climb(&mut self, client: Option<&DeviceClient>) -> Climbed {
        let cfg = self.config();
        let ladder = self.ladder.get_or_insert_with(|| {
            let trouble = self
                .trouble
                .clone()
                .unwrap_or_else(|| "the device stopped answering".into());
            Ladder::new(trouble)
        });
        let rung = ladder.next(client.is_some(), cfg.power_on.is_some());
        let doing = ladder.doing(&rung);
        match rung {
            Rung::SoftReset => {
                tracing::warn!(device = %self.shared.name, reason = %doing, "recovery: soft reset");
                self.shared.client.send_replace(None);
                self.shared
                    .status
                    .send_modify(|s| s.counters.soft_resets += 1);
                self.set_state(DeviceState::Offline, doing);
                if let Some(c) = client {
                    if let Err(e) = c.reset(QUICK).await {
                        tracing::warn!(device = %self.shared.name, error = %e, "recovery: the reset request was not acknowledged");
                    }
                }
                self.recover_at = Some(Instant::now() + cfg.recovery_wait);
                Climbed::Wait
            }
            Rung::PowerCycle => {
                tracing::warn!(device = %self.shared.name, reason = %doing, "recovery: power cycle");
                self.shared
                    .status
                    .send_modify(|s| s.counters.power_cycles += 1);
                self.set_state(DeviceState::Offline, doing);
                self.recover_at = Some(Instant::now() + cfg.recovery_wait);
                Climbed::PowerCycle
            }
            Rung::Quarantine(reason) => {
                self.enter_quarantine(reason);
                Climbed::Quarantined
            }
        }
    }

    fn enter_quarantine(&mut self, reason: String) {
        tracing::warn!(device = %self.shared.name, %reason, "quarantined");
        self.shared
            .status
            .send_modify(|s| s.counters.quarantines += 1);
        self.expect_nothing();
        self.quarantine = Some(reason.clone());
        self.health_at = Some(Instant::now() + self.config().health_check_every);
        self.set_state(DeviceState::Quarantined, reason);
    }

    /// Switches a latent device off for a power cycle; the main loop
    /// switches it on again (the ladder needs it).
    async fn power_cycle_off(&mut self) {
        self.shared.client.send_replace(None);
        let cfg = self.config();
        match self.powered.take() {
            Some(p) => p.power_off(self.name(), cfg.power_off.as_ref()).await,
            None => {
                // Not switched on by this gateway (it died, or power_on
                // failed): still run power_off, for a clean cycle.
                if let Some(cmd) = cfg.power_off.as_ref() {
                    super::power::run_power_off(self.name(), cmd).await;
                }
            }
        }
    }

    /// Runs the health check of a quarantined device in its own task; the
    /// result comes back as [`Command::HealthChecked`].
    fn start_health_check(&mut self) {
        let Some(q) = self.quarantine.clone() else {
            return;
        };
        if self.health_running {
            return;
        }
        self.health_running = true;
        self.health_at = None;
        let cfg = self.config();
        let what = match &cfg.health_check {
            Some(p) => format!("running the health check {}", p.display()),
            None => "running the health check (ping)".into(),
        };
        tracing::info!(device = %self.shared.name, "{what}");
        self.shared.status.send_modify(|s| {
            s.state = DeviceState::Quarantined;
            s.reason = format!("{q}; {what}");
        });
        let device = Device {
            shared: self.shared.clone(),
        };
        tokio::spawn(async move {
            let r = health_check(&device, cfg.health_check.as_deref()).await;
            let _ = device.shared.commands.send(Command::HealthChecked(r));
        });
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
                tracing::warn!(device = %self.shared.name, %reason, "quarantined by hand");
                self.expect_nothing();
                self.health_at = Some(Instant::now() + self.config().health_check_every);
                self.quarantine = Some(reason.clone());
                let state = self.shared.status.borrow().state;
                if matches!(state, DeviceState::Idle | DeviceState::Busy) {
                    self.set_state(DeviceState::Quarantined, reason);
                }
            }
            Command::Release => {
                self.quarantine = None;
                self.health_at = None;
                if self.shared.status.borrow().state == DeviceState::Quarantined {
                    tracing::info!(device = %self.shared.name, "released from quarantine by hand");
                    self.set_state(DeviceState::Idle, "returned to service by an operator");
                }
            }
            // Only a session can check; outside one the link is down and
            // the lost-link clock runs already.
            Command::Unanswered(_) => {}
            Command::HealthChecked(r) => {
                self.health_running = false;
                let Some(q) = self.quarantine.clone() else {
                    return false;
                };
                let cfg = self.config();
                match r {
                    Ok(passed) => {
                        tracing::info!(device = %self.shared.name, %passed, "health check passed; back in service");
                        self.quarantine = None;
                        self.health_at = None;
                        let connected = self.shared.client.borrow().is_some();
                        if connected {
                            self.set_state(DeviceState::Idle, passed);
                        } else {
                            self.set_state(
                                DeviceState::Offline,
                                format!("{passed}; the link went down since"),
                            );
                        }
                    }
                    Err(failed) => {
                        tracing::warn!(device = %self.shared.name, %failed, "health check failed; still quarantined");
                        let reason = recovery::health_failed(
                            &q,
                            &failed,
                            &human_duration(cfg.health_check_every),
                        );
                        self.quarantine = Some(reason.clone());
                        self.health_at = Some(Instant::now() + cfg.health_check_every);
                        self.set_state(DeviceState::Quarantined, reason);
                    }
                }
            }
        }
        false
    }

    /// Waits `d` (or until the ladder or a health check is due), still
    /// obeying orders.
    async fn pause(&mut self, d: Duration) -> Interrupt {
        let mut until = Instant::now() + d;
        if let Some(t) = self.next_deadline() {
            until = until.min(t);
        }
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
            // Recovery and health checks due while no session runs: the
            // link is down, so no soft reset is possible.
            if Self::due(self.recover_at) {
                match self.climb(None).await {
                    Climbed::Wait | Climbed::Quarantined => {}
                    Climbed::PowerCycle => {
                        self.power_cycle_off().await;
                        if let Interrupt::Shutdown = self.pause(POWER_CYCLE_GAP).await {
                            break;
                        }
                    }
                }
            }
            if self.quarantine.is_some() && Self::due(self.health_at) {
                let every = self.config().health_check_every;
                self.health_at = Some(Instant::now() + every);
                if self.config().power_on.is_some() {
                    // A latent device gets a fresh start for its next check.
                    tracing::info!(device = %self.shared.name, "power cycling a quarantined device for its health check");
                    self.power_cycle_off().await;
                    if let Interrupt::Shutdown = self.pause(POWER_CYCLE_GAP).await {
                        break;
                    }
                }
            }
            let cfg = self.config();
            if let Some(power) = &cfg.power_on {
                if self.powered.is_none() {
                    if !self.needs_power() {
                        self.expect_nothing();
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
                    self.expect("no handshake after switching it on".into(), true);
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
                        SessionEnd::PowerOff => self.expect_nothing(),
                        SessionEnd::PowerCycle => {
                            self.power_cycle_off().await;
                            if let Interrupt::Shutdown = self.pause(POWER_CYCLE_GAP).await {
                                break;
                            }
                        }
                    }
                }
            }
        }
        self.shared.client.send_replace(None);
        if let Some(p) = self.powered.take() {
            let cfg = self.config();
            p.power_off(self.name(), cfg.power_off.as_ref()).await;
        }
        self.quarantine = None;
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
            if self.needs_power() {
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
        let mut link_up = false;
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
                    link_up = matches!(now, SessionState::Ready(_));
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
                                self.expect(format!("the device restarted and did not introduce itself over {endpoint}"), false);
                            }
                        }
                        SessionState::Unresponsive => {
                            self.shared.client.send_replace(None);
                            self.shared.status.send_modify(|s| s.counters.unresponsive += 1);
                            self.set_state(DeviceState::Offline, format!("no answer over {endpoint}; waiting for it to come back"));
                            self.expect(format!("no answer over {endpoint}"), false);
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
                            if ready_once {
                                self.expect(why.clone(), false);
                            }
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
                            if ready_once {
                                self.expect(why.clone(), false);
                            }
                            return SessionEnd::Lost(why);
                        }
                    }
                    // A latent device goes back off once nobody needs it.
                    if self.powered.is_some() {
                        let cfg = self.config();
                        let idle_for = cfg.idle_power_off_after.unwrap_or(Duration::ZERO);
                        if !self.needs_power() {
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
                _ = sleep_until_opt(self.next_deadline()) => {
                    if Self::due(self.recover_at) {
                        let up = link_up.then_some(&client);
                        if let Climbed::PowerCycle = self.climb(up).await {
                            return SessionEnd::PowerCycle;
                        }
                    }
                    if self.quarantine.is_some() && Self::due(self.health_at) {
                        let cfg = self.config();
                        if link_up {
                            self.start_health_check();
                        } else {
                            self.health_at = Some(Instant::now() + cfg.health_check_every);
                            if cfg.power_on.is_some() {
                                tracing::info!(device = %self.shared.name, "power cycling a quarantined device for its health check");
                                return SessionEnd::PowerCycle;
                            }
                        }
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    None => return SessionEnd::Shutdown,
                    Some(Command::Unanswered(what)) => {
                        if !link_up || self.ladder.is_some() || self.quarantine.is_some() {
                            continue;
                        }
                        match client.ping(QUICK).await {
                            Ok(rtt) => tracing::info!(device = %self.shared.name, %what, rtt = ?rtt, "a request went unanswered, but a ping was answered; no recovery"),
                            Err(e) => {
                                let trouble = format!("{what}, and a ping got no answer ({e})");
                                tracing::warn!(device = %self.shared.name, %trouble, "the device stopped answering");
                                self.shared.status.send_modify(|s| s.counters.unresponsive += 1);
                                self.trouble = Some(trouble.clone());
                                self.ladder = Some(Ladder::new(trouble));
                                self.recover_at = Some(Instant::now());
                            }
                        }
                    }
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
    /// The ladder or a health check needs the power cycled.
    PowerCycle,
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The health check of a quarantined device: its `health_check` job under a
/// lease, or, without one, a ping (the handshake already happened). The
/// text says what passed or what failed.
async fn health_check(device: &Device, job: Option<&Path>) -> Result<String, String> {
    let _lease = LeaseGuard::acquire(device.lease(), "health check", Some(QUICK))
        .await
        .map_err(|e| e.to_string())?;
    let Some(path) = job else {
        let client = device.client(QUICK).await.map_err(|e| e.to_string())?;
        return match client.ping(QUICK).await {
            Ok(rtt) => Ok(format!(
                "health check passed: handshake and ping ({} ms)",
                rtt.as_millis()
            )),
            Err(e) => Err(format!("ping: {e}")),
        };
    };
    let job = Job::load(path).map_err(|e| format!("job {}: {e}", path.display()))?;
    let result = crate::runner::run_job(&job, device, &Default::default()).await;
    match result.outcome() {
        JobOutcome::Passed => Ok(format!("health check {} passed", path.display())),
        _ => {
            let why = result
                .steps
                .iter()
                .find(|s| !matches!(s.outcome, Outcome::Passed | Outcome::Skipped { .. }))
                .map(|s| {
                    format!(
                        "step {} ({}) {}: {}",
                        s.number,
                        s.name,
                        s.outcome.label(),
                        s.outcome.message().unwrap_or("")
                    )
                })
                .unwrap_or_else(|| "the job did not pass".into());
            Err(format!("job {}: {why}", path.display()))
        }
    }
}
