//! Arbitrary bytes into `Envelope::decode`.
//!
//! Besides "no panic": what decodes must encode again (in at most as many
//! bytes, since the encoder writes the shortest form) and decode to the same
//! value, and errors must name a kind consistent with the error.

#![no_main]

use corral_protocol::message::{Body, DecodeError, Envelope, BODY_KINDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Envelope::decode(data) {
        Ok(env) => {
            let mut buf = vec![0u8; data.len()];
            let n = env
                .encode(&mut buf)
                .expect("the canonical encoding is never longer than the input");
            assert_eq!(Envelope::decode(&buf[..n]), Ok(env));
            assert!(env.kind() < BODY_KINDS);
            // The list accessors must cope with any string.
            match env.body {
                Body::Exec(req) => {
                    let _ = (
                        req.argv.iter().count(),
                        req.env.iter().count(),
                        req.argv.len(),
                    );
                }
                Body::DeviceInfo(info) => {
                    let _ = info.commands.iter().map(str::len).sum::<usize>();
                }
                _ => {}
            }
        }
        Err(DecodeError::UnknownKind { kind, .. }) => assert!(kind >= BODY_KINDS),
        Err(DecodeError::BadBody { kind, .. }) => assert!(kind < BODY_KINDS),
        Err(DecodeError::Malformed) => {}
    }
});
