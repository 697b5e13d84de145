//! Forwarding the agent's own warnings to the gateway as `Log` messages.
//!
//! A person looking at a failed job sees the gateway's view; "put of x
//! failed: no space left" or "a peer failed authentication" written only to
//! the device's journal would go unseen. [`ForwardLayer`] is a
//! `tracing-subscriber` layer that copies every warning and error into a
//! bounded broadcast channel; each connected session sends what it receives
//! as `Log` (request id 0). The channel is lossy on purpose: a session that
//! cannot keep up skips lines rather than hold memory or slow the agent down.

use std::fmt::Write as _;

use corral_protocol::message::LogLevel;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept for a session that is momentarily behind.
const CAPACITY: usize = 64;

/// Longest line forwarded, in bytes: keeps every `Log` message far below the
/// smallest message a peer must accept.
pub const MAX_LINE: usize = 1000;

/// One forwarded line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its severity on the wire.
    pub level: LogLevel,
    /// The message and its fields, one line.
    pub text: String,
}

/// The receiving end: sessions subscribe to it.
#[derive(Debug, Clone)]
pub struct LogForwarder {
    tx: broadcast::Sender<LogRecord>,
}

impl LogForwarder {
    /// A new receiver of the lines logged from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogRecord> {
        self.tx.subscribe()
    }
}

/// The layer to add to the agent's subscriber.
#[derive(Debug, Clone)]
pub struct ForwardLayer {
    tx: broadcast::Sender<LogRecord>,
}

/// A forwarding layer and its forwarder.
pub fn forwarding() -> (ForwardLayer, LogForwarder) {
    let (tx, _) = broadcast::channel(CAPACITY);
    (ForwardLayer { tx: tx.clone() }, LogForwarder { tx })
}

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // In `tracing`, less verbose levels compare smaller.
        if level > Level::WARN || self.tx.receiver_count() == 0 {
            return;
        }
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let mut text = visitor.message;
        if !visitor.fields.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&visitor.fields);
        }
        truncate(&mut text, MAX_LINE);
        let level = if level == Level::ERROR {
            LogLevel::ERROR
        } else {
            LogLevel::WARN
        };
        // No receiver right now is fine: nobody is connected.
        let _ = self.tx.send(LogRecord { level, text });
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field, format_args!("{value:?}"));
        }
    }
}

impl LineVisitor {
    fn push_field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={}", field.name(), value);
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, on one line.
fn truncate(text: &mut String, max: usize) {
    if text.contains('\n') {
        *text = text.replace('\n', " ");
    }
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn warnings_and_errors_are_forwarded_with_their_fields() {
        let (layer, fwd) = forwarding();
        let mut rx = fwd.subscribe();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not forwarded");
            tracing::warn!(path = "a/b", "put failed");
            tracing::error!("broken\nline");
        });
        let first = rx.try_recv().unwrap();
        assert_eq!(first.level, LogLevel::WARN);
        assert_eq!(first.text, "put failed path=a/b");
        let second = rx.try_recv().unwrap();
        assert_eq!(second.level, LogLevel::ERROR);
        assert_eq!(second.text, "broken line");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let mut s = "é".repeat(MAX_LINE);
        truncate(&mut s, MAX_LINE);
        assert!(s.len() <= MAX_LINE);
        assert!(s.chars().all(|c| c == 'é'));
    }
}
