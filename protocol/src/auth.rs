//! Challenge–response authentication for transports anyone could connect to
//! (TCP). Runs on the raw stream before the link starts; sans-IO, the caller
//! supplies random nonces.
//!
//! Both sides hold the same 32-byte pre-shared key (a key file with 64 hex
//! characters, as `openssl rand -hex 32` prints). The key never crosses the
//! wire, and each side proves it knows the key:
//!
//! ```text
//! agent → gateway  CHALLENGE  "CORRAL-AUTH1" ‖ agent_nonce[32]                       44 bytes
//! gateway → agent  RESPONSE   gateway_nonce[32] ‖ HMAC(key, "client" ‖ an ‖ gn)[32]   64 bytes
//! agent → gateway  VERDICT    0x01 ‖ HMAC(key, "server" ‖ an ‖ gn)[32]                33 bytes
//!                             (or 0x00 ‖ zeros, then the agent closes)
//! ```
//!
//! HMAC is HMAC-SHA-256; comparisons are constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Magic at the start of a challenge.
pub const MAGIC: &[u8; 12] = b"CORRAL-AUTH1";
/// Length of a challenge.
pub const CHALLENGE_LEN: usize = 44;
/// Length of a response.
pub const RESPONSE_LEN: usize = 64;
/// Length of a verdict.
pub const VERDICT_LEN: usize = 33;

/// A pre-shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The key text is not 64 hex characters.
    KeyFormat,
    /// The peer does not speak this authentication (wrong service, or a
    /// Corral agent that does not require a key).
    BadMagic,
    /// The peer's proof does not match our key.
    WrongKey,
    /// The agent refused our proof: the keys differ.
    Refused,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AuthError::KeyFormat => {
                "a key must be 64 hexadecimal characters (as printed by `openssl rand -hex 32`)"
            }
            AuthError::BadMagic => "the peer did not send a Corral authentication challenge",
            AuthError::WrongKey => "the peer's proof does not match our key",
            AuthError::Refused => "the agent refused our key",
        })
    }
}

impl Key {
    /// A key from its bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }

    /// Parses the text of a key file: 64 hex characters, surrounding
    /// whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, AuthError> {
        let t = text.trim().as_bytes();
        if t.len() != 64 {
            return Err(AuthError::KeyFormat);
        }
        let mut k = [0u8; 32];
        for (i, pair) in t.chunks(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or(AuthError::KeyFormat)?;
            let lo = hex_val(pair[1]).ok_or(AuthError::KeyFormat)?;
            k[i] = hi << 4 | lo;
        }
        Ok(Key(k))
    }

    fn mac(&self, label: &[u8], an: &[u8; 32], gn: &[u8; 32]) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        m.update(label);
        m.update(an);
        m.update(gn);
        m
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The agent's challenge.
pub fn challenge(agent_nonce: &[u8; 32]) -> [u8; CHALLENGE_LEN] {
    let mut c = [0u8; CHALLENGE_LEN];
    c[..12].copy_from_slice(MAGIC);
    c[12..].copy_from_slice(agent_nonce);
    c
}

/// The gateway's response to a challenge.
pub fn respond(
    key: &Key,
    challenge: &[u8; CHALLENGE_LEN],
    gateway_nonce: &[u8; 32],
) -> Result<[u8; RESPONSE_LEN], AuthError> {
    if &challenge[..12] != MAGIC {
        return Err(AuthError::BadMagic);
    }
    let an = nonce(&challenge[12..]);
    let mac = key
        .mac(b"client", &an, gateway_nonce)
        .finalize()
        .into_bytes();
    let mut r = [0u8; RESPONSE_LEN];
    r[..32].copy_from_slice(gateway_nonce);
    r[32..].copy_from_slice(&mac);
    Ok(r)
}

/// The agent checks a response. On success, returns the verdict to send; on
/// failure the caller sends [`refusal`] and closes.
pub fn verify_response(
    key: &Key,
    agent_nonce: &[u8; 32],
    response: &[u8; RESPONSE_LEN],
) -> Result<[u8; VERDICT_LEN], AuthError> {
    let gn = nonce(&response[..32]);
    key.mac(b"client", agent_nonce, &gn)
        .verify_slice(&response[32..])
        .map_err(|_| AuthError::WrongKey)?;
    let mac = key.mac(b"server", agent_nonce, &gn).finalize().into_bytes();
    let mut v = [0u8; VERDICT_LEN];
    v[0] = 1;
    v[1..].copy_from_slice(&mac);
    Ok(v)
}

/// The verdict an agent sends when the key is wrong.
pub const fn refusal() -> [u8; VERDICT_LEN] {
    [0u8; VERDICT_LEN]
}

/// The gateway checks the agent's verdict, which proves the agent knows the
/// key too.
pub fn verify_verdict(
    key: &Key,
    challenge: &[u8; CHALLENGE_LEN],
    gateway_nonce: &[u8; 32],
    verdict: &[u8; VERDICT_LEN],
) -> Result<(), AuthError> {
    if verdict[0] != 1 {
        return Err(AuthError::Refused);
    }
    let an = nonce(&challenge[12..]);
    key.mac(b"server", &an, gateway_nonce)
        .verify_slice(&verdict[1..])
        .map_err(|_| AuthError::WrongKey)
}

fn nonce(b: &[u8]) -> [u8; 32] {
    let mut n = [0u8; 32];
    n.copy_from_slice(&b[..32]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

    #[test]
    fn both_sides_prove_the_key() {
        let key = Key::from_hex(KEY).unwrap();
        let c = challenge(&[7; 32]);
        let r = respond(&key, &c, &[9; 32]).unwrap();
        let v = verify_response(&key, &[7; 32], &r).unwrap();
        verify_verdict(&key, &c, &[9; 32], &v).unwrap();
    }

    #[test]
    fn wrong_key_is_refused_on_both_sides() {
        let key = Key::from_hex(KEY).unwrap();
        let other = Key::from_bytes([1; 32]);
        let c = challenge(&[7; 32]);
        let r = respond(&other, &c, &[9; 32]).unwrap();
        assert_eq!(
            verify_response(&key, &[7; 32], &r),
            Err(AuthError::WrongKey)
        );
        assert_eq!(
            verify_verdict(&other, &c, &[9; 32], &refusal()),
            Err(AuthError::Refused)
        );
    }

    #[test]
    fn key_text_must_be_64_hex_chars() {
        assert_eq!(Key::from_hex("abc"), Err(AuthError::KeyFormat));
        assert_eq!(Key::from_hex(&"zz".repeat(32)), Err(AuthError::KeyFormat));
    }
}
