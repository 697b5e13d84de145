//! Leases: a device has at most one holder at a time.
//!
//! A lease has a time-to-live that its holder renews while it works; a
//! holder that dies stops renewing and the lease runs out, so a crashed CI
//! job never keeps a board forever. A second user waits for the lease (or
//! gives up at once with `--no-wait`) instead of colliding with the first.
//! Lease ids come from one counter per gateway and only grow, so they double
//! as fencing tokens: a request made under a lease that has since been
//! replaced is refused.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Default time-to-live of a lease.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// A lease as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    /// The lease id (fencing token).
    pub id: u64,
    /// Who holds it.
    pub holder: String,
    /// Milliseconds until it runs out unless renewed.
    pub expires_in_ms: u64,
    /// Its time-to-live, renewed on every use.
    pub ttl_ms: u64,
}

#[derive(Debug, Clone)]
struct Lease {
    id: u64,
    holder: String,
    ttl: Duration,
    expires: Instant,
}

/// Why a lease operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    /// Someone else holds the device.
    #[error("device {device} is leased by {holder} (lease {id}, {expires_in_ms} ms left unless renewed)")]
    Busy {
        /// The device.
        device: String,
        /// The holder.
        holder: String,
        /// Their lease id.
        id: u64,
        /// Time left on their lease.
        expires_in_ms: u64,
    },
    /// The lease id is not (or no longer) the device's lease.
    #[error("lease {id} is not held on device {device} (it expired or was released)")]
    NotHeld {
        /// The device.
        device: String,
        /// The id presented.
        id: u64,
    },
}

/// The lease slot of one device.
pub struct LeaseSlot {
    device: String,
    ids: Arc<AtomicU64>,
    state: Mutex<Option<Lease>>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LeaseSlot {
    /// A free slot; `ids` is the gateway-wide id counter.
    pub fn new(device: &str, ids: Arc<AtomicU64>) -> Self {
        LeaseSlot {
            device: device.to_string(),
            ids,
            state: Mutex::new(None),
            changed: Notify::new(),
        }
    }

    fn live(&self, now: Instant) -> Option<Lease> {
        let mut s = lock(&self.state);
        if s.as_ref().is_some_and(|l| l.expires <= now) {
            tracing::info!(device = %self.device, holder = %s.as_ref().map(|l| l.holder.clone()).unwrap_or_default(), "lease expired");
            *s = None;
            self.changed.notify_waiters();
        }
        s.clone()
    }

    /// The current lease, if any.
    pub fn current(&self) -> Option<LeaseInfo> {
        let now = Instant::now();
        self.live(now).map(|l| info(&l, now))
    }

    /// Takes the lease for `holder`; waits up to `wait` for the current
    /// holder to release it or let it expire (`None`: do not wait).
    pub async fn acquire(
        &self,
        holder: &str,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<LeaseInfo, LeaseError> {
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let current = self.live(now);
            match current {
                None => {
                    let lease = Lease {
                        id: self.ids.fetch_add(1, Ordering::Relaxed) + 1,
                        holder: holder.to_string(),
                        ttl,
                        expires: now + ttl,
                    };
                    let out = info(&lease, now);
                    *lock(&self.state) = Some(lease);
                    tracing::info!(device = %self.device, holder, id = out.id, "lease taken");
                    self.changed.notify_waiters();
                    return Ok(out);
                }
                Some(l) => {
                    let busy = LeaseError::Busy {
                        device: self.device.clone(),
                        holder: l.holder.clone(),
                        id: l.id,
                        expires_in_ms: l.expires.saturating_duration_since(now).as_millis() as u64,
                    };
                    let Some(deadline) = deadline else {
                        return Err(busy);
                    };
                    if now >= deadline {
                        return Err(busy);
                    }
                    // Wake on release, or when the lease could have expired.
                    let until = deadline.min(l.expires);
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
            }
        }
    }

    /// Extends a lease by its time-to-live (or `ttl` if given).
    pub fn renew(&self, id: u64, ttl: Option<Duration>) -> Result<LeaseInfo, LeaseError> {
        let now = Instant::now();
        self.live(now);
        let mut s = lock(&self.state);
        match s.as_mut() {
            Some(l) if l.id == id => {
                if let Some(t) = ttl {
                    l.ttl = t;
                }
                l.expires = now + l.ttl;
                Ok(info(l, now))
            }
            _ => Err(LeaseError::NotHeld {
                device: self.device.clone(),
                id,
            }),
        }
    }

    /// Checks that `id` is the current lease, renewing it (every use counts
    /// as a sign of life).
    pub fn check(&self, id: u64) -> Result<(), LeaseError> {
        self.renew(id, None).map(|_| ())
    }

    /// Gives a lease back.
    pub fn release(&self, id: u64) -> Result<(), LeaseError> {
        let mut s = lock(&self.state);
        match s.as_ref() {
            Some(l) if l.id == id => {
                tracing::info!(device = %self.device, holder = %l.holder, id, "lease released");
                *s = None;
                drop(s);
                self.changed.notify_waiters();
                Ok(())
            }
            _ => Err(LeaseError::NotHeld {
                device: self.device.clone(),
                id,
            }),
        }
    }

    /// Waits until the lease changes hands or is released.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

fn info(l: &Lease, now: Instant) -> LeaseInfo {
    LeaseInfo {
        id: l.id,
        holder: l.holder.clone(),
        expires_in_ms: l.expires.saturating_duration_since(now).as_millis() as u64,
        ttl_ms: l.ttl.as_millis() as u64,
    }
}

/// A lease held by a task in this process: renewed in the background while
/// the guard lives, released when it is dropped.
pub struct LeaseGuard {
    slot: Arc<LeaseSlot>,
    id: u64,
    renewer: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    /// Takes the lease and keeps it alive.
    pub async fn acquire(
        slot: Arc<LeaseSlot>,
        holder: &str,
        wait: Option<Duration>,
    ) -> Result<LeaseGuard, LeaseError> {
        let ttl = Duration::from_secs(30);
        let lease = slot.acquire(holder, ttl, wait).await?;
        let id = lease.id;
        let s = slot.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if s.renew(id, None).is_err() {
                    return;
                }
            }
        });
        Ok(LeaseGuard { slot, id, renewer })
    }

    /// The lease id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        let _ = self.slot.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Arc<LeaseSlot> {
        Arc::new(LeaseSlot::new("dev", Arc::new(AtomicU64::new(0))))
    }

    #[tokio::test(start_paused = true)]
    async fn second_holder_is_refused_or_waits_for_release() {
        let s = slot();
        let a = s
            .acquire("alice", Duration::from_secs(10), None)
            .await
            .unwrap();
        let err = s
            .acquire("bob", Duration::from_secs(10), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, LeaseError::Busy { ref holder, .. } if holder == "alice"),
            "{err}"
        );
        let s2 = s.clone();
        let waiter = tokio::spawn(async move {
            s2.acquire(
                "bob",
                Duration::from_secs(10),
                Some(Duration::from_secs(60)),
            )
            .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.release(a.id).unwrap();
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(b.holder, "bob");
        assert!(b.id > a.id, "ids grow: they are fencing tokens");
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_that_stops_renewing_loses_the_lease() {
        let s = slot();
        let a = s
            .acquire("crashed-ci", Duration::from_secs(5), None)
            .await
            .unwrap();
        let b = s
            .acquire(
                "next",
                Duration::from_secs(5),
                Some(Duration::from_secs(30)),
            )
            .await
            .unwrap();
        assert_eq!(b.holder, "next");
        assert!(matches!(
            s.renew(a.id, None),
            Err(LeaseError::NotHeld { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn renewing_keeps_it() {
        let s = slot();
        let a = s
            .acquire("alice", Duration::from_secs(5), None)
            .await
            .unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            s.renew(a.id, None).unwrap();
        }
        assert_eq!(s.current().unwrap().holder, "alice");
    }

    #[tokio::test(start_paused = true)]
    async fn guard_releases_on_drop() {
        let s = slot();
        let g = LeaseGuard::acquire(s.clone(), "job", None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(s.current().unwrap().id, g.id(), "renewed in the background");
        drop(g);
        assert!(s.current().is_none());
    }
}
