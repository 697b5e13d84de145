//! The gateway: every device of the inventory, leases and jobs.
//!
//! [`Gateway`] is what the HTTP API serves and what the in-process demo
//! drives. It never blocks on one device: each has its own task.

use crate::config::inventory::{Inventory, InventoryDiff};
use crate::config::job::Job;
use crate::config::Label;
use crate::device::{task, Device, DeviceState};
use crate::lease::{LeaseError, LeaseGuard};
use crate::report::{JobOutcome, JobResult};
use crate::runner::{run_job, RunOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Why a device name did not resolve.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// No such device.
    #[error("no device called {name:?}; known devices: {}", known_list(.known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every device name.
        known: Vec<String>,
    },
    /// A prefix that matches several devices.
    #[error("{name:?} is ambiguous: it could be {}", .matches.join(", "))]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// The devices it could mean.
        matches: Vec<String>,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(none: the inventory is empty)".into()
    } else {
        known.join(", ")
    }
}

/// Which device a job should run on.
#[derive(Debug, Clone)]
pub enum Target {
    /// This device.
    Device(String),
    /// Any device with all these labels.
    Labels(Vec<Label>),
}

/// Why a job could not run at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The device name did not resolve.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// No device has these labels.
    #[error("no device has the labels {0}")]
    NoMatch(String),
    /// The device (or every matching one) is leased.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The device is quarantined.
    #[error("device {name} is quarantined: {reason}")]
    Quarantined {
        /// The device.
        name: String,
        /// Why.
        reason: String,
    },
    /// No matching device became free in time.
    #[error("no device with the labels {0} became free in time")]
    AllBusy(String),
}

#[derive(Default)]
struct JobCounters {
    passed: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
}

struct Inner {
    name: String,
    devices: RwLock<BTreeMap<String, Device>>,
    inventory: Mutex<Inventory>,
    ids: Arc<AtomicU64>,
    jobs: JobCounters,
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

impl Gateway {
    /// Starts a task for every device of the inventory. Must run inside a
    /// tokio runtime.
    pub fn start(inventory: Inventory) -> Gateway {
        let name = inventory.gateway.name.clone().unwrap_or_else(host_name);
        let ids = Arc::new(AtomicU64::new(0));
        let mut devices = BTreeMap::new();
        for d in &inventory.devices {
            devices.insert(
                d.name.clone(),
                task::spawn(d.clone(), ids.clone(), name.clone()),
            );
        }
        tracing::info!(gateway = %name, devices = devices.len(), "gateway started");
        Gateway {
            inner: Arc::new(Inner {
                name,
                devices: RwLock::new(devices),
                inventory: Mutex::new(inventory),
                ids,
                jobs: JobCounters::default(),
            }),
        }
    }

    /// The gateway's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The inventory in force.
    pub fn inventory(&self) -> Inventory {
        lock(&self.inner.inventory).clone()
    }

    /// Every device, by name.
    pub fn devices(&self) -> Vec<Device> {
        read(&self.inner.devices).values().cloned().collect()
    }

    /// A device by its name, or by a prefix that names exactly one device.
    pub fn device(&self, name: &str) -> Result<Device, LookupError> {
        let devices = read(&self.inner.devices);
        if let Some(d) = devices.get(name) {
            return Ok(d.clone());
        }
        let matches: Vec<&String> = devices.keys().filter(|k| k.starts_with(name)).collect();
        match matches.as_slice() {
            [one] => Ok(devices[*one].clone()),
            [] => Err(LookupError::Unknown {
                name: name.to_string(),
                known: devices.keys().cloned().collect(),
            }),
            many => Err(LookupError::Ambiguous {
                name: name.to_string(),
                matches: many.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    /// Devices carrying all `labels`.
    pub fn select(&self, labels: &[Label]) -> Vec<Device> {
        self.devices()
            .into_iter()
            .filter(|d| Label::all_present(labels, &d.config().labels))
            .collect()
    }

    /// Applies a new inventory without touching unchanged devices (SIGHUP).
    pub fn reload(&self, new: Inventory) -> InventoryDiff {
        let old = self.inventory();
        let diff = Inventory::diff(&old, &new);
        {
            let mut devices = write(&self.inner.devices);
            for name in &diff.removed {
                if let Some(d) = devices.remove(name) {
                    d.shutdown();
                }
            }
            for name in &diff.added {
                if let Some(cfg) = new.device(name) {
                    devices.insert(
                        name.clone(),
                        task::spawn(cfg.clone(), self.inner.ids.clone(), self.inner.name.clone()),
                    );
                }
            }
            for change in &diff.changed {
                if let (Some(d), Some(cfg)) = (devices.get(&change.name), new.device(&change.name))
                {
                    d.reconfigure(cfg.clone());
                }
            }
        }
        tracing::info!(added = ?diff.added, removed = ?diff.removed, changed = diff.changed.len(), "inventory reloaded");
        *lock(&self.inner.inventory) = new;
        diff
    }

    /// Runs a job on a device (leasing it for the run) and returns its
    /// result. `wait` bounds the wait for a busy device (`None`: fail at
    /// once).
    pub async fn run_job(
        &self,
        job: &Job,
        target: &Target,
        holder: &str,
        wait: Option<Duration>,
    ) -> Result<JobResult, RunError> {
        let (device, guard) = self.lease_for(target, holder, wait).await?;
        let demand = device.demand();
        let result = run_job(
            job,
            &device,
            &RunOptions {
                gateway: Some(self.inner.name.clone()),
            },
        )
        .await;
        drop(demand);
        drop(guard);
        let c = &self.inner.jobs;
        match result.outcome() {
            JobOutcome::Passed => c.passed.fetch_add(1, Ordering::Relaxed),
            JobOutcome::Failed => c.failed.fetch_add(1, Ordering::Relaxed),
            JobOutcome::Error => c.errors.fetch_add(1, Ordering::Relaxed),
        };
        Ok(result)
    }

    /// Leases a device for `holder`: the named one, or the first free one
    /// with the labels.
    pub async fn lease_for(
        &self,
        target: &Target,
        holder: &str,
        wait: Option<Duration>,
    ) -> Result<(Device, LeaseGuard), RunError> {
        match target {
            Target::Device(name) => {
                let device = self.device(name)?;
                if let DeviceState::Quarantined = device.status().state {
                    return Err(RunError::Quarantined {
                        name: device.name().to_string(),
                        reason: device.status().reason,
                    });
                }
                let guard = LeaseGuard::acquire(device.lease(), holder, wait).await?;
                Ok((device, guard))
            }
            Target::Labels(labels) => {
                let shown = labels
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let deadline = wait.map(|w| tokio::time::Instant::now() + w);
                loop {
                    let candidates: Vec<Device> = self
                        .select(labels)
                        .into_iter()
                        .filter(|d| d.status().state != DeviceState::Quarantined)
                        .collect();
                    if candidates.is_empty() {
                        return Err(RunError::NoMatch(shown));
                    }
                    // Prefer connected devices, then latent ones, then the rest.
                    let mut ordered = candidates.clone();
                    ordered.sort_by_key(|d| match d.status().state {
                        DeviceState::Idle => 0,
                        DeviceState::PoweredOff => 1,
                        _ => 2,
                    });
                    for d in ordered {
                        if let Ok(guard) = LeaseGuard::acquire(d.lease(), holder, None).await {
                            return Ok((d, guard));
                        }
                    }
                    match deadline {
                        Some(t) if tokio::time::Instant::now() < t => {
                            // Wake when any candidate's lease changes, or poll.
                            let waits = candidates
                                .iter()
                                .map(|d| {
                                    let slot = d.lease();
                                    Box::pin(async move { slot.changed().await })
                                        as std::pin::Pin<
                                            Box<dyn std::future::Future<Output = ()> + Send>,
                                        >
                                })
                                .collect();
                            let any = futures_select_all(waits);
                            let _ = tokio::time::timeout(Duration::from_millis(500), any).await;
                        }
                        _ => return Err(RunError::AllBusy(shown)),
                    }
                }
            }
        }
    }

    /// Prometheus metrics, text exposition format.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut m = String::new();
        let states = [
            DeviceState::Offline,
            DeviceState::Connecting,
            DeviceState::Idle,
            DeviceState::Busy,
            DeviceState::Quarantined,
            DeviceState::PoweredOff,
        ];
        let statuses: Vec<_> = self.devices().iter().map(|d| d.status()).collect();
        let _ = writeln!(
            m,
            "# HELP corral_device_state 1 for the state each device is in."
        );
        let _ = writeln!(m, "# TYPE corral_device_state gauge");
        for s in &statuses {
            for st in states {
                let _ = writeln!(
                    m,
                    "corral_device_state{{device=\"{}\",state=\"{}\"}} {}",
                    s.name,
                    st.as_str(),
                    u8::from(s.state == st)
                );
            }
        }
        let counters: [CounterMetric; 9] = [
            (
                "corral_device_reconnects_total",
                "Link reopened after the first connection.",
                |c| c.reconnects,
            ),
            (
                "corral_device_resets_total",
                "Device restarts under an open link.",
                |c| c.device_resets,
            ),
            (
                "corral_link_crc_errors_total",
                "Frames dropped for a bad CRC.",
                |c| c.crc_errors,
            ),
            (
                "corral_link_retransmits_total",
                "Segments sent again.",
                |c| c.retransmits,
            ),
            (
                "corral_link_timeouts_total",
                "Retransmission timeouts.",
                |c| c.timeouts,
            ),
            (
                "corral_device_unresponsive_total",
                "Times a device stopped answering.",
                |c| c.unresponsive,
            ),
            (
                "corral_device_soft_resets_total",
                "Soft resets sent by the recovery ladder.",
                |c| c.soft_resets,
            ),
            (
                "corral_device_power_cycles_total",
                "Power cycles run by the recovery ladder.",
                |c| c.power_cycles,
            ),
            (
                "corral_device_quarantines_total",
                "Times a device was quarantined.",
                |c| c.quarantines,
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(m, "# HELP {name} {help}");
            let _ = writeln!(m, "# TYPE {name} counter");
            for s in &statuses {
                let _ = writeln!(m, "{name}{{device=\"{}\"}} {}", s.name, get(&s.counters));
            }
        }
        let _ = writeln!(
            m,
            "# HELP corral_link_rtt_seconds Smoothed round-trip time of each device's link."
        );
        let _ = writeln!(m, "# TYPE corral_link_rtt_seconds gauge");
        for s in &statuses {
            if let Some(us) = s.rtt_us {
                let _ = writeln!(
                    m,
                    "corral_link_rtt_seconds{{device=\"{}\"}} {:.6}",
                    s.name,
                    f64::from(us) / 1e6
                );
            }
        }
        let j = &self.inner.jobs;
        let _ = writeln!(m, "# HELP corral_jobs_total Jobs run, by outcome.");
        let _ = writeln!(m, "# TYPE corral_jobs_total counter");
        for (o, v) in [
            ("passed", &j.passed),
            ("failed", &j.failed),
            ("error", &j.errors),
        ] {
            let _ = writeln!(
                m,
                "corral_jobs_total{{outcome=\"{o}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        m
    }

    /// Stops every device task and releases the ports.
    pub async fn shutdown(&self) {
        let devices = self.devices();
        for d in &devices {
            d.shutdown();
        }
        for d in &devices {
            let mut w = d.watch();
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while w.borrow_and_update().reason != "gateway stopped" {
                    if w.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// A counter's metric name, help text and how to read it.
type CounterMetric = (
    &'static str,
    &'static str,
    fn(&crate::device::Counters) -> u64,
);

/// Resolves when any of the futures does.
async fn futures_select_all(
    futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) {
    if futs.is_empty() {
        return std::future::pending().await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let handles: Vec<_> = futs
        .into_iter()
        .map(|f| {
            let tx = tx.clone();
            tokio::spawn(async move {
                f.await;
                let _ = tx.send(()).await;
            })
        })
        .collect();
    let _ = rx.recv().await;
    for h in handles {
        h.abort();
    }
}
