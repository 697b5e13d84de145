//! A hand-written postcard codec for the message types, for firmware.
//!
//! Firmware that writes a message in place (a `Data` message whose bytes
//! come straight from a file store, say) uses [`Writer`] and [`Wire`]
//! directly: the encoding of an enum variant is its kind as a `u32` and
//! then its content.
//!
//! [`Envelope::decode`](crate::message::Envelope::decode) and
//! [`encode`](crate::message::Envelope::encode) go through serde and
//! postcard. That is several KiB of flash on a Cortex-M: every message type
//! gets its own serde visitor, sequence access and error plumbing. This
//! module reads and writes the same bytes with a few small functions, and
//! [`Envelope::decode_kinds`](crate::message::Envelope::decode_kinds) /
//! [`encode_kinds`](crate::message::Envelope::encode_kinds) use it.
//!
//! The rules are postcard's (see `docs/protocol.md` §6 and
//! `crate::schema`), exactly, including what it refuses:
//!
//! - `u8` is one raw byte; `bool` one byte, 0 or 1.
//! - `u16`, `u32`, `u64` and lengths (`usize`) are LEB128 varints of at most
//!   `⌈bits/7⌉` bytes; the last possible byte may not carry bits beyond the
//!   type; non-minimal encodings are accepted. Lengths use the *platform's*
//!   `usize`, as postcard does.
//! - `i32`, `i64` are zigzag-encoded varints.
//! - `&str` and `&[u8]` are a length and the bytes (`&str` must be UTF-8).
//! - `[u8; 32]` is 32 raw bytes.
//! - A struct is its fields in declaration order; a fieldless enum its
//!   variant index as a `u32` varint.
//!
//! The tests check it against serde's derived (de)serialization for every
//! message kind, on valid, mutated and random bytes, and against the golden
//! vectors.

use crate::message::{
    Data, DeviceInfo, DirEntry, ErrorCode, ErrorReply, ExecRequest, ExitReason, ExitReport,
    FileHash, FileKind, FileStat, Get, HostHello, Limits, LogLevel, LogLine, Output, PutOpen,
    PutReady, Started, StrList, Stream, Write,
};

/// Reads postcard values from the front of a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    /// A varint for an unsigned type of `bits` bits (16, 32 or 64).
    // Out of line: one copy serves every integer field.
    #[inline(never)]
    pub fn varint(&mut self, bits: u32) -> Option<u64> {
        let max_len = bits.div_ceil(7);
        // The bits the last possible byte may carry.
        let last_max = (1u8 << (bits % 7)) - 1;
        let mut out = 0u64;
        for i in 0..max_len {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (i + 1 < max_len || b <= last_max).then_some(out);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        self.varint(usize::BITS).map(|n| n as usize)
    }
}

/// Writes postcard values into a buffer.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    /// A writer that fills `buf` from its start.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, at: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.at
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// Writes `bytes` as they are (no length); `None` if they do not fit.
    pub fn raw(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }

    /// Writes one byte; `None` if it does not fit.
    pub fn byte(&mut self, b: u8) -> Option<()> {
        *self.buf.get_mut(self.at)? = b;
        self.at += 1;
        Some(())
    }

    /// Writes a varint in its minimal form (as postcard writes an unsigned
    /// integer or a length); `None` if it does not fit.
    // Out of line: one copy serves every integer field.
    #[inline(never)]
    pub fn varint(&mut self, mut v: u64) -> Option<()> {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.byte(v as u8)
    }
}

/// A value with a postcard encoding.
pub trait Wire<'a>: Sized {
    /// Reads a value; `None` if the bytes are not one (as postcard refuses
    /// them).
    fn read(r: &mut Reader<'a>) -> Option<Self>;
    /// Writes the value; `None` if it does not fit.
    fn write(&self, w: &mut Writer<'_>) -> Option<()>;
}

impl Wire<'_> for () {
    fn read(_: &mut Reader<'_>) -> Option<Self> {
        Some(())
    }
    fn write(&self, _: &mut Writer<'_>) -> Option<()> {
        Some(())
    }
}

impl Wire<'_> for u8 {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        r.byte()
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.byte(*self)
    }
}

impl Wire<'_> for bool {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.byte(u8::from(*self))
    }
}

macro_rules! wire_unsigned {
    ($($t:ty),*) => {$(
        impl Wire<'_> for $t {
            fn read(r: &mut Reader<'_>) -> Option<Self> {
                // In range: `varint` refuses more than `BITS` bits.
                r.varint(<$t>::BITS).map(|v| v as $t)
            }
            fn write(&self, w: &mut Writer<'_>) -> Option<()> {
                w.varint(u64::from(*self))
            }
        }
    )*};
}
wire_unsigned!(u16, u32, u64);

impl Wire<'_> for i32 {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        let n = u32::read(r)?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        (((self << 1) ^ (self >> 31)) as u32).write(w)
    }
}

impl Wire<'_> for i64 {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        let n = u64::read(r)?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        (((self << 1) ^ (self >> 63)) as u64).write(w)
    }
}

impl<'a> Wire<'a> for &'a [u8] {
    fn read(r: &mut Reader<'a>) -> Option<Self> {
        let n = r.len()?;
        r.take(n)
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.varint(self.len() as u64)?;
        w.raw(self)
    }
}

impl<'a> Wire<'a> for &'a str {
    fn read(r: &mut Reader<'a>) -> Option<Self> {
        core::str::from_utf8(<&[u8]>::read(r)?).ok()
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        self.as_bytes().write(w)
    }
}

impl Wire<'_> for [u8; 32] {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        r.take(32)?.try_into().ok()
    }
    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.raw(self)
    }
}

/// Newtypes that serde encodes as their one field (`#[serde(transparent)]`).
macro_rules! wire_transparent {
    ($($t:ident $(<$l:lifetime>)? ($inner:ty)),* $(,)?) => {$(
        impl<'a> Wire<'a> for $t $(<$l>)? {
            fn read(r: &mut Reader<'a>) -> Option<Self> {
                <$inner>::read(r).map($t)
            }
            fn write(&self, w: &mut Writer<'_>) -> Option<()> {
                self.0.write(w)
            }
        }
    )*};
}
wire_transparent!(StrList<'a>(&'a str), LogLevel(u8), ErrorCode(u16));

/// Fieldless enums: the variant index as a `u32` varint.
macro_rules! wire_enum {
    ($($t:ident { $($v:ident),* $(,)? }),* $(,)?) => {$(
        impl Wire<'_> for $t {
            fn read(r: &mut Reader<'_>) -> Option<Self> {
                let i = u32::read(r)?;
                [$($t::$v),*].get(i as usize).copied()
            }
            fn write(&self, w: &mut Writer<'_>) -> Option<()> {
                // The discriminant is the declaration index: no variant
                // sets one.
                (*self as u32).write(w)
            }
        }
    )*};
}
wire_enum! {
    Stream { Stdout, Stderr },
    ExitReason { Exited, Signaled, TimedOut, Cancelled, FailedToStart },
    FileKind { File, Dir, Symlink, Other },
}

/// Structs: the fields in declaration order (the list must follow it; the
/// tests compare with serde's derive, which does).
macro_rules! wire_struct {
    ($($t:ident $(<$l:lifetime>)? { $($f:ident),* $(,)? }),* $(,)?) => {$(
        impl<'a> Wire<'a> for $t $(<$l>)? {
            fn read(r: &mut Reader<'a>) -> Option<Self> {
                // Struct expressions evaluate their fields in the order
                // written, so this reads them in wire order.
                Some($t { $($f: Wire::read(r)?),* })
            }
            fn write(&self, w: &mut Writer<'_>) -> Option<()> {
                $(self.$f.write(w)?;)*
                Some(())
            }
        }
    )*};
}
wire_struct! {
    HostHello<'a> { name, software },
    Limits { max_commands, storage_bytes, storage_free, max_file },
    DeviceInfo<'a> { name, board, serial, firmware, boot_id, limits, commands },
    ExecRequest<'a> { argv, env, cwd, timeout_ms, stdin, credit, token },
    Started { pid },
    Output<'a> { stream, data },
    ExitReport<'a> { reason, code, signal, duration_ms, output_dropped, detail },
    PutOpen<'a> { path, size, sha256, mode },
    PutReady { have, credit },
    Write<'a> { offset, data },
    Get<'a> { path, offset, credit },
    Data<'a> { offset, data },
    FileStat { kind, size, mode, mtime },
    DirEntry<'a> { name, stat },
    FileHash { size, sha256 },
    LogLine<'a> { level, text },
    ErrorReply<'a> { code, message },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours<'a, T: Wire<'a>>(bytes: &'a [u8]) -> Option<T> {
        T::read(&mut Reader::new(bytes))
    }

    fn theirs<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
        postcard::take_from_bytes(bytes).ok().map(|(v, _)| v)
    }

    #[test]
    fn varints_follow_postcard_at_the_edges() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x00],
            &[0x7f],
            &[0x80],
            &[0x80, 0x00],
            &[0xff, 0xff, 0x03],
            &[0xff, 0xff, 0x04],
            &[0xff, 0xff, 0x83, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
            &[0xff, 0xff, 0xff, 0xff, 0x8f, 0x00],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ],
        ];
        for bytes in cases {
            assert_eq!(ours::<u16>(bytes), theirs::<u16>(bytes), "{bytes:02x?}");
            assert_eq!(ours::<u32>(bytes), theirs::<u32>(bytes), "{bytes:02x?}");
            assert_eq!(ours::<u64>(bytes), theirs::<u64>(bytes), "{bytes:02x?}");
            assert_eq!(ours::<i32>(bytes), theirs::<i32>(bytes), "{bytes:02x?}");
            assert_eq!(ours::<i64>(bytes), theirs::<i64>(bytes), "{bytes:02x?}");
            assert_eq!(ours::<&[u8]>(bytes), theirs::<&[u8]>(bytes));
            assert_eq!(ours::<bool>(bytes), theirs::<bool>(bytes));
        }
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut a = [0u8; 16];
            let mut w = Writer::new(&mut a);
            v.write(&mut w).unwrap();
            let n = w.len();
            let mut b = [0u8; 16];
            assert_eq!(&a[..n], postcard::to_slice(&v, &mut b).unwrap());
        }
    }
}
