//! Framing: how a link's datagrams survive a raw byte pipe such as a UART.
//!
//! On the wire a frame is `COBS(body ‖ CRC-32C(body) as u32 LE) 0x00`. COBS
//! removes every zero byte from the encoded data, so `0x00` only ever appears as
//! a delimiter and a receiver that starts listening mid-stream (or loses bytes)
//! resynchronises at the next delimiter. Senders also put a `0x00` *before* the
//! first frame of each burst, so text printed on the same line just before it
//! (a boot banner, `printf` output) ends up in a chunk of its own.
//!
//! The decoder classifies every chunk between delimiters:
//! - a chunk that COBS-decodes and whose CRC matches is a **frame**;
//! - a chunk that fails but looks like text (printable ASCII, whitespace, UTF-8)
//!   is **console text** and handed to the application, never dropped silently;
//! - anything else is a damaged frame, dropped and counted;
//! - a chunk longer than the decoder's buffer is dropped and counted, unless it
//!   is text, which is passed on in buffer-sized pieces.
//!
//! See `docs/protocol.md` §2 for the byte layout.

/// The frame delimiter.
pub const DELIMITER: u8 = 0x00;
/// Length of the CRC-32C trailer inside the COBS-encoded part.
pub const CRC_LEN: usize = 4;

/// CRC-32C (Castagnoli), the frame check: hosts (feature `fast-crc`) use
/// slice-by-16 tables (16 KiB, several times faster).
#[cfg(feature = "fast-crc")]
pub(crate) const CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// CRC-32C (Castagnoli), the frame check: firmware uses [`NibbleCrc32c`],
/// whose table is 64 bytes instead of the 1 KiB of a byte-wise one.
#[cfg(not(feature = "fast-crc"))]
pub(crate) const CRC32C: NibbleCrc32c = NibbleCrc32c;

/// CRC-32C computed four bits at a time with a 16-entry table: 64 bytes of
/// flash instead of 1 KiB for the byte-wise table, at about half its speed
/// (two table steps per byte; plenty for a UART). Same interface as the
/// `crc` crate's `Crc` for what the framing uses.
#[cfg_attr(feature = "fast-crc", allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct NibbleCrc32c;

/// A CRC-32C in progress ([`NibbleCrc32c::digest`]).
#[cfg_attr(feature = "fast-crc", allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct NibbleDigest(u32);

#[cfg_attr(feature = "fast-crc", allow(dead_code))]
impl NibbleCrc32c {
    /// The reflected Castagnoli polynomial.
    const POLY: u32 = 0x82F6_3B78;
    /// The CRC of each 4-bit value.
    const TABLE: [u32; 16] = {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut bit = 0;
            while bit < 4 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ Self::POLY
                } else {
                    c >> 1
                };
                bit += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };

    pub(crate) const fn digest(&self) -> NibbleDigest {
        NibbleDigest(!0)
    }

    pub(crate) fn checksum(&self, bytes: &[u8]) -> u32 {
        let mut d = self.digest();
        d.update(bytes);
        d.finalize()
    }
}

#[cfg_attr(feature = "fast-crc", allow(dead_code))]
impl NibbleDigest {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let t = &NibbleCrc32c::TABLE;
        let mut c = self.0;
        for &b in bytes {
            c ^= u32::from(b);
            // `& 15` keeps the index in the table: no bounds check.
            c = (c >> 4) ^ t[(c & 15) as usize];
            c = (c >> 4) ^ t[(c & 15) as usize];
        }
        self.0 = c;
    }

    pub(crate) fn finalize(self) -> u32 {
        !self.0
    }
}

/// Worst-case number of wire bytes for a frame whose body is `body_len` bytes,
/// including the trailing delimiter and an optional leading one.
pub const fn max_encoded_len(body_len: usize) -> usize {
    let raw = body_len + CRC_LEN;
    // COBS adds one code byte per started run of 254 bytes, plus one.
    raw + raw / 254 + 1 + 2
}

/// The output buffer was too small for the encoded frame; nothing usable was
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

/// Encodes one frame whose body is the concatenation of `parts` into `out`,
/// including the trailing delimiter. Returns the number of bytes written.
///
/// Taking the body in parts lets the link write a header and a slice of its
/// send buffer without first copying them together.
pub fn encode(parts: &[&[u8]], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let body_len: usize = parts.iter().map(|p| p.len()).sum();
    if out.len() < max_encoded_len(body_len) - 1 {
        return Err(BufferTooSmall);
    }
    let mut digest = CRC32C.digest();
    for part in parts {
        digest.update(part);
    }
    let crc = digest.finalize().to_le_bytes();
    let n = crate::cobs::encode(parts, &crc, out).ok_or(BufferTooSmall)?;
    *out.get_mut(n).ok_or(BufferTooSmall)? = DELIMITER;
    Ok(n + 1)
}

/// Counters kept by a [`FrameDecoderState`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames that passed the check.
    pub frames: u32,
    /// Chunks dropped because COBS decoding or the CRC failed.
    pub bad_frames: u32,
    /// Chunks dropped because they were longer than the decoder's buffer.
    pub oversized: u32,
    /// Bytes passed on as console text.
    pub console_bytes: u32,
}

/// One item found by the decoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A checked frame body (CRC removed).
    Frame(&'a [u8]),
    /// Bytes that were not a frame but look like text.
    Console(&'a [u8]),
}

/// What to hand out once the borrow of the buffer may be taken again.
enum Found {
    Frame(usize),
    Console(usize),
    Nothing,
}

/// The streaming decoder's state, separate from its buffer so the link can keep
/// the buffer in its one storage block. [`FrameDecoder`] bundles both.
#[derive(Debug, Default, Clone)]
pub struct FrameDecoderState {
    len: usize,
    skipping: bool,
    /// Counters since creation.
    pub stats: FrameStats,
}

impl FrameDecoderState {
    /// A decoder with an empty buffer.
    pub const fn new() -> Self {
        FrameDecoderState {
            len: 0,
            skipping: false,
            stats: FrameStats {
                frames: 0,
                bad_frames: 0,
                oversized: 0,
                console_bytes: 0,
            },
        }
    }

    /// Bytes of an unfinished chunk waiting for their delimiter.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Feeds `input` until one item is complete. Returns how many input bytes
    /// were consumed and the item, if any; call again with the rest.
    ///
    /// `buf` must be the same buffer on every call. Never panics and never
    /// holds more than `buf.len()` bytes, whatever the input.
    pub fn push<'b>(&mut self, buf: &'b mut [u8], input: &[u8]) -> (usize, Option<Decoded<'b>>) {
        // Whole runs up to the next delimiter are copied at once: on a host
        // link this loop sees hundreds of MB/s.
        //
        // Slices are taken with `get`, which cannot fail here, so that no
        // panic paths (and their messages) end up in firmware.
        let mut i = 0;
        while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
            let delim = rest.iter().position(|&b| b == DELIMITER);
            let data = rest.get(..delim.unwrap_or(rest.len())).unwrap_or(rest);
            if !self.skipping {
                let room = buf.len().saturating_sub(self.len);
                if data.len() <= room {
                    copy_into(buf, self.len, data);
                    self.len += data.len();
                } else {
                    copy_into(buf, self.len, data.get(..room).unwrap_or_default());
                    self.len = buf.len();
                    if looks_like_text(buf) {
                        // A long line of text with no delimiter: pass on a
                        // buffer's worth and keep going with the rest.
                        self.len = 0;
                        let n = buf.len();
                        self.stats.console_bytes = self.stats.console_bytes.wrapping_add(n as u32);
                        return (i + room, Some(Decoded::Console(buf)));
                    }
                    self.len = 0;
                    self.skipping = true;
                    self.stats.oversized = self.stats.oversized.wrapping_add(1);
                }
            }
            i += data.len();
            if delim.is_none() {
                break;
            }
            // At a delimiter: the chunk is complete.
            i += 1;
            let n = core::mem::take(&mut self.len);
            if core::mem::take(&mut self.skipping) || n == 0 {
                continue;
            }
            let Some(chunk) = buf.get_mut(..n) else {
                continue;
            };
            match self.classify(chunk) {
                Found::Frame(len) => return (i, Some(Decoded::Frame(prefix(buf, len)))),
                Found::Console(len) => return (i, Some(Decoded::Console(prefix(buf, len)))),
                Found::Nothing => continue,
            }
        }
        (input.len(), None)
    }

    /// Hands out an unfinished chunk as console text if it looks like text.
    ///
    /// The link calls this when the line has been quiet for a while: text such
    /// as a boot banner is usually not followed by a delimiter, and a frame in
    /// transit never pauses mid-way.
    pub fn flush_text<'b>(&mut self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let n = self.len;
        let text = buf
            .get(..n)
            .filter(|t| !t.is_empty() && !self.skipping && looks_like_text(t))?;
        self.len = 0;
        self.stats.console_bytes = self.stats.console_bytes.wrapping_add(n as u32);
        Some(text)
    }

    fn classify(&mut self, chunk: &mut [u8]) -> Found {
        let n = chunk.len();
        if looks_like_text(chunk) {
            // Decode in place only once we know it is a frame: otherwise the
            // text would be destroyed.
            if let Some(len) = verify_without_decoding(chunk) {
                decode_in_place(chunk);
                self.stats.frames = self.stats.frames.wrapping_add(1);
                return Found::Frame(len);
            }
            self.stats.console_bytes = self.stats.console_bytes.wrapping_add(n as u32);
            return Found::Console(n);
        }
        match crate::cobs::decode_in_place(chunk) {
            Some(len) if len > CRC_LEN => {
                let body = len - CRC_LEN;
                let mut want = [0u8; CRC_LEN];
                want.copy_from_slice(&chunk[body..len]);
                if CRC32C.checksum(&chunk[..body]) == u32::from_le_bytes(want) {
                    self.stats.frames = self.stats.frames.wrapping_add(1);
                    return Found::Frame(body);
                }
                self.stats.bad_frames = self.stats.bad_frames.wrapping_add(1);
                Found::Nothing
            }
            _ => {
                self.stats.bad_frames = self.stats.bad_frames.wrapping_add(1);
                Found::Nothing
            }
        }
    }
}

/// A frame decoder that owns its buffer, for users outside a link (tools,
/// fuzzing, other implementations' tests).
pub struct FrameDecoder<const N: usize> {
    buf: [u8; N],
    state: FrameDecoderState,
}

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// A decoder that accepts encoded chunks of up to `N` bytes.
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; N],
            state: FrameDecoderState::new(),
        }
    }

    /// See [`FrameDecoderState::push`].
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Decoded<'_>>) {
        self.state.push(&mut self.buf, input)
    }

    /// See [`FrameDecoderState::flush_text`].
    pub fn flush_text(&mut self) -> Option<&[u8]> {
        self.state.flush_text(&mut self.buf)
    }

    /// Counters since creation.
    pub fn stats(&self) -> FrameStats {
        self.state.stats
    }
}

/// True if `bytes` could be console output: printable ASCII, common control
/// characters of terminals, or bytes of multi-byte UTF-8 sequences.
pub fn looks_like_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| matches!(b, 0x20..=0x7e | b'\t' | b'\n' | b'\r' | 0x1b | 0x08 | 0x80..=0xff))
}

/// Copies `data` into `buf` at `at` if it fits (callers make sure it does).
fn copy_into(buf: &mut [u8], at: usize, data: &[u8]) {
    if let Some(dst) = buf.get_mut(at..).and_then(|b| b.get_mut(..data.len())) {
        dst.copy_from_slice(data);
    }
}

/// The first `len` bytes of `buf` (all of it if shorter).
fn prefix(buf: &[u8], len: usize) -> &[u8] {
    buf.get(..len).unwrap_or(buf)
}

/// Decodes COBS in place; only called on chunks already verified.
fn decode_in_place(chunk: &mut [u8]) {
    let _ = crate::cobs::decode_in_place(chunk);
}

/// Checks a COBS chunk and its CRC without modifying it; returns the body
/// length if it is a valid frame.
fn verify_without_decoding(chunk: &[u8]) -> Option<usize> {
    let total = cobs_decoded_len(chunk)?;
    if total <= CRC_LEN {
        return None;
    }
    let body = total - CRC_LEN;
    let mut digest = CRC32C.digest();
    let mut tail = [0u8; CRC_LEN];
    let mut pos = 0usize;
    for_each_decoded(chunk, |b| {
        if pos < body {
            digest.update(&[b]);
        } else {
            tail[pos - body] = b;
        }
        pos += 1;
    });
    (digest.finalize() == u32::from_le_bytes(tail)).then_some(body)
}

/// Length of the decoded COBS data, or `None` if `chunk` is not valid COBS.
fn cobs_decoded_len(chunk: &[u8]) -> Option<usize> {
    let mut i = 0usize;
    let mut len = 0usize;
    while i < chunk.len() {
        let code = chunk[i] as usize;
        if code == 0 || i + code > chunk.len() {
            return None;
        }
        len += code - 1;
        i += code;
        if code != 0xff && i < chunk.len() {
            len += 1;
        }
    }
    Some(len)
}

/// Calls `f` with each decoded byte of a chunk already checked by
/// [`cobs_decoded_len`].
fn for_each_decoded(chunk: &[u8], mut f: impl FnMut(u8)) {
    let mut i = 0usize;
    while i < chunk.len() {
        let code = chunk[i] as usize;
        for &b in &chunk[i + 1..i + code] {
            f(b);
        }
        i += code;
        if code != 0xff && i < chunk.len() {
            f(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nibble_crc_matches_the_crc_crate() {
        let reference = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISCSI);
        // The CRC-32C check value.
        assert_eq!(super::NibbleCrc32c.checksum(b"123456789"), 0xE306_9283);
        let data: std::vec::Vec<u8> = (0..=255u8).chain((0..=255).rev()).collect();
        for len in [0, 1, 2, 3, 7, 64, 255, 512] {
            let bytes = &data[..len];
            assert_eq!(
                super::NibbleCrc32c.checksum(bytes),
                reference.checksum(bytes)
            );
            // In pieces, as the framing feeds it.
            let mut d = super::NibbleCrc32c.digest();
            for piece in bytes.chunks(5) {
                d.update(piece);
            }
            assert_eq!(d.finalize(), reference.checksum(bytes));
        }
    }

    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn encoded(body: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; max_encoded_len(body.len())];
        let n = encode(&[body], &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn decode_all<const N: usize>(
        dec: &mut FrameDecoder<N>,
        mut input: &[u8],
    ) -> Vec<(bool, Vec<u8>)> {
        let mut items = Vec::new();
        while !input.is_empty() {
            let (used, item) = dec.push(input);
            input = &input[used..];
            match item {
                Some(Decoded::Frame(f)) => items.push((true, f.to_vec())),
                Some(Decoded::Console(t)) => items.push((false, t.to_vec())),
                None => {}
            }
        }
        items
    }

    #[test]
    fn frame_round_trips_including_zero_bytes() {
        let body = [0u8, 1, 0, 0, 255, 0];
        let wire = encoded(&body);
        assert!(!wire[..wire.len() - 1].contains(&0));
        let mut dec = FrameDecoder::<64>::new();
        assert_eq!(decode_all(&mut dec, &wire), [(true, body.to_vec())]);
    }

    #[test]
    fn banner_before_a_frame_comes_out_as_console_text() {
        let mut wire = b"U-Boot 2024.01 booting\r\n".to_vec();
        wire.push(0);
        wire.extend(encoded(b"\x01\x02hello"));
        let mut dec = FrameDecoder::<128>::new();
        let items = decode_all(&mut dec, &wire);
        assert_eq!(items[0], (false, b"U-Boot 2024.01 booting\r\n".to_vec()));
        assert_eq!(items[1], (true, b"\x01\x02hello".to_vec()));
    }

    #[test]
    fn corrupted_frame_is_dropped_counted_and_next_frame_survives() {
        let mut a = encoded(&[9u8; 40]);
        a[5] ^= 0x10;
        let b = encoded(&[7u8; 40]);
        let mut dec = FrameDecoder::<128>::new();
        let items = decode_all(&mut dec, &[a, b].concat());
        assert_eq!(items, [(true, std::vec![7u8; 40])]);
        assert_eq!(dec.stats().bad_frames, 1);
    }

    #[test]
    fn text_body_frame_is_recognised_as_frame() {
        // A frame whose encoded form is all printable must still be a frame.
        let wire = encoded(b"plain ascii body");
        let mut dec = FrameDecoder::<128>::new();
        assert_eq!(
            decode_all(&mut dec, &wire),
            [(true, b"plain ascii body".to_vec())]
        );
    }

    #[test]
    fn oversized_binary_chunk_is_dropped_and_decoder_resyncs() {
        let mut wire = std::vec![1u8; 500];
        wire.push(0);
        wire.extend(encoded(b"\x03ok"));
        let mut dec = FrameDecoder::<64>::new();
        assert_eq!(decode_all(&mut dec, &wire), [(true, b"\x03ok".to_vec())]);
        assert_eq!(dec.stats().oversized, 1);
    }

    #[test]
    fn long_text_without_delimiter_is_passed_on_in_pieces() {
        let text = [b'x'; 100];
        let mut dec = FrameDecoder::<32>::new();
        let items = decode_all(&mut dec, &text);
        let mut got: Vec<u8> = items.into_iter().flat_map(|(_, t)| t).collect();
        got.extend(dec.flush_text().unwrap());
        assert_eq!(got, text);
    }
}
