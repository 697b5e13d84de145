//! `core::fmt` output onto a [`SerialPort`].

use crate::SerialPort;
use core::fmt;

/// Adapts a [`SerialPort`] to [`core::fmt::Write`], so that `write!` can print
/// console text (logs, panic messages) on it.
///
/// ```
/// use core::fmt::Write;
/// use corral_board_common::{SerialPort, SerialWriter};
///
/// struct Sink(Vec<u8>);
/// impl SerialPort for Sink {
///     fn read(&mut self, _: &mut [u8]) -> usize { 0 }
///     fn write(&mut self, data: &[u8]) { self.0.extend_from_slice(data) }
///     fn flush(&mut self) {}
/// }
///
/// let mut sink = Sink(Vec::new());
/// write!(SerialWriter(&mut sink), "uptime {} s\r\n", 42).unwrap();
/// assert_eq!(sink.0, b"uptime 42 s\r\n");
/// ```
pub struct SerialWriter<'a, S: SerialPort + ?Sized>(pub &'a mut S);

impl<S: SerialPort + ?Sized> fmt::Write for SerialWriter<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}
