//! Sending replies: a request's [`Outbox`] encodes messages for its id and
//! stops at once when the session it belongs to is gone.

use corral_io::driver::LinkSender;
use corral_protocol::link::MIN_MESSAGE;
use corral_protocol::message::{Body, Envelope, ErrorCode, ErrorReply};
use tokio::sync::watch;

/// Longest human message in an `Error` reply, in bytes.
const MAX_ERROR_TEXT: usize = 1000;

/// Where the session's link stands, as request tasks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Connected: messages flow.
    Up,
    /// The gateway has not been heard for a while; the same session may come
    /// back ([`LinkState::Up`]) with nothing lost.
    Down,
    /// The session ended (link closed, peer restarted, replaced, reset):
    /// nothing sent for it can arrive any more.
    Gone,
}

/// The session has ended; the reply cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

/// The session's link as the request tasks share it.
#[derive(Clone)]
pub(crate) struct LinkHandle {
    sender: LinkSender,
    max_message: usize,
    state: watch::Receiver<LinkState>,
}

impl LinkHandle {
    pub(crate) fn new(
        sender: LinkSender,
        max_message: usize,
        state: watch::Receiver<LinkState>,
    ) -> Self {
        LinkHandle {
            sender,
            max_message: max_message.max(MIN_MESSAGE as usize),
            state,
        }
    }

    /// The outbox of request `id`.
    pub(crate) fn outbox(&self, id: u32) -> Outbox {
        Outbox {
            id,
            link: self.clone(),
        }
    }

    /// A receiver of the link's state changes.
    pub(crate) fn watch(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }
}

/// Sends the messages of one request.
#[derive(Clone)]
pub(crate) struct Outbox {
    id: u32,
    link: LinkHandle,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("id", &self.id).finish()
    }
}

impl Outbox {
    /// The request id.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// A receiver of the link's state changes.
    pub(crate) fn watch(&self) -> watch::Receiver<LinkState> {
        self.link.watch()
    }

    /// Largest data payload (output, file data) per message: the peer's
    /// limit less room for the envelope, and at most 60 KiB so one message
    /// never holds the link for long.
    pub(crate) fn max_payload(&self) -> usize {
        self.link
            .max_message
            .saturating_sub(64)
            .clamp(32, 60 * 1024)
    }

    /// Sends one message; waits while the link is full or down. Fails once
    /// the session is gone, so a reply never leaks into a later session.
    pub(crate) async fn send(&self, body: Body<'_>) -> Result<(), Gone> {
        let env = Envelope::new(self.id, body);
        let Some(bytes) = encode(&env, self.link.max_message) else {
            if matches!(env.body, Body::Log(_)) {
                // Never log about a log line: that could loop.
                return Ok(());
            }
            // Payloads are cut to `max_payload` and texts to a few hundred
            // bytes, so only a peer that takes tiny messages gets here.
            tracing::error!(
                id = self.id,
                kind = env.kind(),
                "a reply does not fit the peer's message size; dropping it"
            );
            return Ok(());
        };
        let mut state = self.link.state.clone();
        if *state.borrow_and_update() == LinkState::Gone {
            return Err(Gone);
        }
        tokio::select! {
            sent = self.link.sender.send(bytes) => sent.map_err(|_| Gone),
            () = until(&mut state, |s| s == LinkState::Gone) => Err(Gone),
        }
    }

    /// Sends an `Error` reply.
    pub(crate) async fn error(&self, code: ErrorCode, message: &str) -> Result<(), Gone> {
        tracing::debug!(id = self.id, %code, message, "request failed");
        let message = clip(message, MAX_ERROR_TEXT.min(self.max_payload()));
        self.send(Body::Error(ErrorReply { code, message })).await
    }
}

/// Completes once the link state satisfies `pred` (or the session's state
/// sender is gone, which means the session is gone).
pub(crate) async fn until(
    state: &mut watch::Receiver<LinkState>,
    pred: impl Fn(LinkState) -> bool,
) {
    // The guard `wait_for` returns must not live across an await.
    let _ = state.wait_for(|s| pred(*s)).await.map(|_| ());
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Encodes into a buffer sized for the message rather than for the largest
/// possible one, so small replies do not each carry a 256 KiB allocation.
fn encode(env: &Envelope<'_>, max: usize) -> Option<Vec<u8>> {
    let mut want = 256 + payload_len(&env.body);
    loop {
        let len = want.min(max);
        let mut buf = vec![0u8; len];
        if let Some(n) = env.encode(&mut buf) {
            buf.truncate(n);
            return Some(buf);
        }
        if len >= max {
            return None;
        }
        want = len.saturating_mul(2);
    }
}

fn payload_len(body: &Body<'_>) -> usize {
    match body {
        Body::Output(o) => o.data.len(),
        Body::Data(d) => d.data.len(),
        Body::Error(e) => e.message.len(),
        Body::Exit(x) => x.detail.len(),
        Body::Entry(e) => e.name.len(),
        Body::Log(l) => l.text.len(),
        Body::DeviceInfo(d) => {
            d.name.len() + d.board.len() + d.serial.len() + d.firmware.len() + d.commands.0.len()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_protocol::message::{Output, Stream};

    #[test]
    fn encode_fits_small_and_large_messages() {
        let data = vec![7u8; 50_000];
        let env = Envelope::new(
            3,
            Body::Output(Output {
                stream: Stream::Stdout,
                data: &data,
            }),
        );
        let bytes = encode(&env, 64 * 1024).unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        assert!(encode(&env, 10_000).is_none());
        let small = encode(&Envelope::new(1, Body::Ok), 64 * 1024).unwrap();
        assert!(small.capacity() <= 256);
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }
}
