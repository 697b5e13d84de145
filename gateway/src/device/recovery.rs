//! The recovery ladder: what the gateway tries, in order, when a device
//! stops answering, and the words it uses for it.
//!
//! A device "stops answering" when its link is lost (keepalive timeout, EOF)
//! and it is not back with a handshake within the device's `recover_after`,
//! or when a request to it goes unanswered while the link is up (and a ping
//! confirms it). The ladder then climbs:
//!
//! 1. a soft reset over the protocol — only possible while the link is up;
//! 2. a power cycle (`power_off`, then `power_on`) — only with `power_on`;
//! 3. quarantine, with a reason that names what was tried.
//!
//! After each of the first two rungs the device gets `recovery_wait` to come
//! back with a handshake; if it does, it is recovered. This module is only
//! the decision and its wording, so it can be tested without a device; the
//! device task ([`super::task`]) does the work and keeps the time.

/// A rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rung {
    /// Ask the agent to restart (`Body::Reset`).
    SoftReset,
    /// Run `power_off`, then `power_on`.
    PowerCycle,
    /// Give up: take no work until a health check passes. The reason.
    Quarantine(String),
}

/// How far a rung got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// Not reached yet.
    Pending,
    /// Done; the device did not come back.
    Tried,
    /// Not possible; why.
    Skipped(&'static str),
}

/// One climb of the ladder, from the trigger to recovery or quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ladder {
    trigger: String,
    reset: Attempt,
    power: Attempt,
}

impl Ladder {
    /// Starts a climb; `trigger` says what went wrong, as a person reads it
    /// ("link to /dev/ttyACM0 lost: …, not back within 30s").
    pub(crate) fn new(trigger: impl Into<String>) -> Ladder {
        Ladder {
            trigger: trigger.into(),
            reset: Attempt::Pending,
            power: Attempt::Pending,
        }
    }

    /// What went wrong.
    pub(crate) fn trigger(&self) -> &str {
        &self.trigger
    }

    /// The next rung, given whether the link is up right now and whether the
    /// device has power commands. Each rung is taken at most once.
    pub(crate) fn next(&mut self, link_up: bool, can_power: bool) -> Rung {
        if self.reset == Attempt::Pending {
            if link_up {
                self.reset = Attempt::Tried;
                return Rung::SoftReset;
            }
            self.reset = Attempt::Skipped("the link was down");
        }
        if self.power == Attempt::Pending {
            if can_power {
                self.power = Attempt::Tried;
                return Rung::PowerCycle;
            }
            self.power = Attempt::Skipped("no power commands");
        }
        Rung::Quarantine(format!("{}; {}", self.trigger, self.tried()))
    }

    /// What the climb did, for the quarantine reason: "no answer after a
    /// soft reset and a power cycle".
    fn tried(&self) -> String {
        let mut done = Vec::new();
        let mut not = Vec::new();
        for (what, a) in [
            ("a soft reset", &self.reset),
            ("a power cycle", &self.power),
        ] {
            match a {
                Attempt::Tried => done.push(what),
                Attempt::Skipped(why) => not.push(format!("no {}: {why}", &what[2..])),
                Attempt::Pending => {}
            }
        }
        let head = if done.is_empty() {
            "nothing could be tried".to_string()
        } else {
            format!("no answer after {}", done.join(" and "))
        };
        if not.is_empty() {
            head
        } else {
            format!("{head} ({})", not.join("; "))
        }
    }

    /// What brought the device back, for its state reason.
    pub(crate) fn recovered(&self) -> &'static str {
        if self.power == Attempt::Tried {
            "back after a power cycle"
        } else if self.reset == Attempt::Tried {
            "back after a soft reset"
        } else {
            "back by itself"
        }
    }

    /// The device's state reason while `rung` runs.
    pub(crate) fn doing(&self, rung: &Rung) -> String {
        match rung {
            Rung::SoftReset => format!("recovering: soft reset ({})", self.trigger),
            Rung::PowerCycle => format!("recovering: power cycle ({})", self.trigger),
            Rung::Quarantine(r) => r.clone(),
        }
    }
}

/// The state reason of a quarantined device whose health check failed.
pub(crate) fn health_failed(quarantined: &str, failure: &str, retry: &str) -> String {
    // Keep the original cause first and only the latest failure.
    let cause = quarantined
        .split("; health check failed: ")
        .next()
        .unwrap_or(quarantined);
    format!(
        "{cause}; health check failed: {failure}; trying again in {retry} or at the next reconnect"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_link_goes_straight_to_the_power_cycle() {
        let mut l = Ladder::new("link lost, not back within 30s");
        assert_eq!(l.recovered(), "back by itself");
        assert_eq!(l.next(false, true), Rung::PowerCycle);
        assert_eq!(l.recovered(), "back after a power cycle");
        assert_eq!(
            l.doing(&Rung::PowerCycle),
            "recovering: power cycle (link lost, not back within 30s)"
        );
        assert_eq!(
            l.next(false, true),
            Rung::Quarantine(
                "link lost, not back within 30s; no answer after a power cycle (no soft reset: the link was down)"
                    .into()
            )
        );
    }

    #[test]
    fn a_silent_agent_on_a_live_link_gets_every_rung() {
        let mut l = Ladder::new("a ping went unanswered");
        assert_eq!(l.next(true, true), Rung::SoftReset);
        // The reset did not help and the link died meanwhile.
        assert_eq!(l.next(false, true), Rung::PowerCycle);
        assert_eq!(
            l.next(false, true),
            Rung::Quarantine(
                "a ping went unanswered; no answer after a soft reset and a power cycle".into()
            )
        );
    }

    #[test]
    fn without_power_commands_a_soft_reset_is_all_there_is() {
        let mut l = Ladder::new("x");
        assert_eq!(l.next(true, false), Rung::SoftReset);
        assert_eq!(
            l.next(true, false),
            Rung::Quarantine(
                "x; no answer after a soft reset (no power cycle: no power commands)".into()
            )
        );
    }

    #[test]
    fn a_dead_link_without_power_commands_is_quarantined_at_once() {
        let mut l = Ladder::new("link lost");
        assert_eq!(
            l.next(false, false),
            Rung::Quarantine(
                "link lost; nothing could be tried (no soft reset: the link was down; no power cycle: no power commands)"
                    .into()
            )
        );
    }

    #[test]
    fn each_rung_is_taken_once() {
        let mut l = Ladder::new("x");
        assert_eq!(l.next(true, true), Rung::SoftReset);
        // The link is up again, but the reset was already tried.
        assert_eq!(l.next(true, true), Rung::PowerCycle);
        assert!(matches!(l.next(true, true), Rung::Quarantine(_)));
        assert!(matches!(l.next(true, true), Rung::Quarantine(_)));
    }

    #[test]
    fn a_failed_health_check_keeps_the_cause_and_the_latest_failure() {
        let r = health_failed(
            "link lost; no answer after a power cycle",
            "step 1 failed",
            "1m",
        );
        assert_eq!(
            r,
            "link lost; no answer after a power cycle; health check failed: step 1 failed; trying again in 1m or at the next reconnect"
        );
        let again = health_failed(&r, "ping unanswered", "1m");
        assert_eq!(
            again,
            "link lost; no answer after a power cycle; health check failed: ping unanswered; trying again in 1m or at the next reconnect"
        );
    }
}
