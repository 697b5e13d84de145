//! Commands compiled into the firmware, and what they see while they run.
//!
//! A command is a plain function that the agent calls again and again (one
//! *step* per agent poll) until it returns [`Step::Exit`]. It must never
//! block: a command that waits returns [`Step::Wait`] with the time it wants
//! to be called again, a command that has more to do returns
//! [`Step::Pending`]. Between steps, its state lives in
//! [`Ctx::state`] (a few words per command slot), in the board's platform
//! ([`Ctx::platform`]), or nowhere: a command whose output only depends on its
//! arguments can print everything at every step with [`Ctx::print`], which
//! skips what earlier steps already got out.
//!
//! ```
//! use corral_agent_core::{Ctx, Platform, Step};
//!
//! /// `greet [NAME]`: prints a greeting.
//! fn greet<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
//!     let name = cx.arg(1).unwrap_or("world");
//!     cx.print("hello, ");
//!     cx.print(name);
//!     cx.print("\n");
//!     // Exit(0) once everything above got out; Pending while output waits
//!     // for credit or room, and then the next step prints the rest.
//!     cx.exit(0)
//! }
//! ```
//!
//! Output goes through a small buffer per command slot that the agent sends
//! as [`Body::Output`](corral_protocol::Body::Output) messages, never more
//! than the gateway granted as credit. Writers take only what fits and say
//! how much they took, so a command that prints a lot pauses by itself until
//! the gateway catches up; the agent does not call it again before there is
//! room for more output.

use core::time::Duration;

use corral_protocol::credit::SendCredit;
use corral_protocol::message::{Limits, StrList, Stream};
use corral_protocol::Instant;

use crate::platform::Platform;
use crate::store::FileStore;
use crate::text;

/// Words of state each running command gets ([`Ctx::state`]), zeroed when it
/// starts.
pub const STATE_WORDS: usize = 4;

/// What a command step asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Call again at the next poll (and tell the main loop not to sleep).
    /// If the step's output did not all fit, the agent waits until there is
    /// room for more before calling again.
    Pending,
    /// Call again at this time (or later), not before.
    Wait(Instant),
    /// Done, with this exit code. Output still buffered is sent first.
    Exit(i32),
}

/// A named command in the firmware.
pub struct Command<P> {
    /// `argv[0]` that runs it.
    pub name: &'static str,
    /// One line of help that `info` prints after the name: the arguments
    /// and what it does, e.g. `"on|off - switch the LED"`.
    pub help: &'static str,
    /// One step of the command.
    pub run: fn(&mut Ctx<'_, P>) -> Step,
}

impl<P> Command<P> {
    /// A command; `const`, for tables in a `const` or `static`.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        run: fn(&mut Ctx<'_, P>) -> Step,
    ) -> Self {
        Command { name, help, run }
    }
}

// Manual impls: a derive would demand `P: Clone`, but only a fn pointer is
// stored.
impl<P> Clone for Command<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for Command<P> {}

impl<P> core::fmt::Debug for Command<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Output state of one command slot, kept between steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutState {
    /// Bytes in the slot's buffer.
    pub len: u16,
    /// Which stream the buffered bytes belong to.
    pub stream: Stream,
    /// Output credit left, already reduced by the buffered bytes.
    pub credit: SendCredit,
    /// How far [`Ctx::print`] got in the command's output so far.
    pub printed: u32,
    /// The last step could not write everything: do not step again before
    /// there is room (a flush) or credit (a grant).
    pub stalled: bool,
}

impl OutState {
    pub(crate) const fn new(credit: u32) -> Self {
        OutState {
            len: 0,
            stream: Stream::Stdout,
            credit: SendCredit::new(credit),
            printed: 0,
            stalled: false,
        }
    }
}

/// A running command's output: its [`Writer`]s and the replaying
/// [`print`](Self::print) family. Reached through [`Ctx`], which forwards
/// the same methods, or [`Ctx::split`] when the printed text borrows the
/// platform.
pub struct Printer<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) st: &'a mut OutState,
    /// Position in the command's logical output during this step's prints.
    pub(crate) pos: u32,
    /// A print of this step did not get everything out.
    pub(crate) short: bool,
}

impl<'a> Printer<'a> {
    pub(crate) fn new(buf: &'a mut [u8], st: &'a mut OutState) -> Self {
        Printer {
            buf,
            st,
            pos: 0,
            short: false,
        }
    }

    fn write(&mut self, stream: Stream, data: &[u8]) -> usize {
        let len = usize::from(self.st.len);
        if len > 0 && self.st.stream != stream {
            // One buffer per slot: the other stream's bytes must go first.
            self.st.stalled |= !data.is_empty();
            return 0;
        }
        let free = self.buf.get_mut(len..).unwrap_or_default();
        let n = self.st.credit.take(data.len().min(free.len()));
        free[..n].copy_from_slice(&data[..n]);
        self.st.len += n as u16;
        self.st.stream = stream;
        if n < data.len() {
            self.st.stalled = true;
        }
        n
    }

    fn room(&self, stream: Stream) -> usize {
        let len = usize::from(self.st.len);
        if len > 0 && self.st.stream != stream {
            return 0;
        }
        let room = self.buf.len() - len;
        (room as u64).min(self.st.credit.available()) as usize
    }

    /// Standard output.
    pub fn stdout(&mut self) -> Writer<'_, 'a> {
        Writer {
            printer: self,
            stream: Stream::Stdout,
        }
    }

    /// Standard error.
    pub fn stderr(&mut self) -> Writer<'_, 'a> {
        Writer {
            printer: self,
            stream: Stream::Stderr,
        }
    }

    /// Prints `text` on stdout as part of output that the command produces
    /// again, identically, at every step: the part that earlier steps already
    /// got out is skipped, and once something does not fit, the rest of this
    /// step's prints are skipped too (they follow at a later step, in order).
    /// Don't mix with [`Writer::write`] in one command.
    pub fn print(&mut self, text: &str) {
        self.emit(Stream::Stdout, text.as_bytes());
    }

    /// [`print`](Self::print) for stderr.
    pub fn eprint(&mut self, text: &str) {
        self.emit(Stream::Stderr, text.as_bytes());
    }

    /// [`print`](Self::print) of raw bytes.
    pub fn print_bytes(&mut self, data: &[u8]) {
        self.emit(Stream::Stdout, data);
    }

    /// [`print`](Self::print) of a number in decimal.
    pub fn print_u64(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        let s = text::decimal(n, &mut buf);
        self.emit(Stream::Stdout, s);
    }

    /// [`print`](Self::print) of bytes as lowercase hex.
    pub fn print_hex(&mut self, data: &[u8]) {
        for chunk in data.chunks(16) {
            let mut buf = [0u8; 32];
            let s = text::hex(chunk, &mut buf);
            self.emit(Stream::Stdout, s);
        }
    }

    /// True if every [`print`](Self::print) of this step got out so far.
    pub fn printed_all(&self) -> bool {
        !self.short
    }

    /// [`Step::Exit`] with `code` if every print of this step got out, else
    /// [`Step::Pending`] so the next step prints the rest.
    pub fn exit(&self, code: i32) -> Step {
        if self.short {
            Step::Pending
        } else {
            Step::Exit(code)
        }
    }

    fn emit(&mut self, stream: Stream, data: &[u8]) {
        let start = self.pos;
        self.pos = self.pos.saturating_add(data.len() as u32);
        let printed = self.st.printed;
        if self.short || self.pos <= printed {
            // Either an earlier print of this step was cut short (what
            // follows must wait to keep the order), or an earlier step
            // already got this text out.
            return;
        }
        let skip = printed.saturating_sub(start) as usize;
        let rest = data.get(skip..).unwrap_or_default();
        let n = self.write(stream, rest);
        self.st.printed += n as u32;
        if n < rest.len() {
            self.short = true;
        }
    }
}

/// A stream of a running command, from [`Ctx::stdout`] or [`Ctx::stderr`].
pub struct Writer<'w, 'a> {
    printer: &'w mut Printer<'a>,
    stream: Stream,
}

impl Writer<'_, '_> {
    /// Takes as much of `data` as fits now (credit granted by the gateway,
    /// room in the slot's buffer) and returns how much it took. Taking less
    /// than all is normal: return [`Step::Pending`] and write the rest at a
    /// later step; the agent calls again once more fits.
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.printer.write(self.stream, data)
    }

    /// Bytes [`write`](Self::write) would take now.
    pub fn room(&self) -> usize {
        self.printer.room(self.stream)
    }
}

/// What a command sees during one step.
pub struct Ctx<'a, P> {
    pub(crate) platform: &'a mut P,
    pub(crate) argv: StrList<'a>,
    pub(crate) now: Instant,
    pub(crate) started: Instant,
    pub(crate) id: u32,
    pub(crate) max_commands: u16,
    pub(crate) state: &'a mut [u32; STATE_WORDS],
    pub(crate) printer: Printer<'a>,
}

impl<'a, P: Platform> Ctx<'a, P> {
    /// The arguments, `argv[0]` (the command's name) first.
    pub fn argv(&self) -> StrList<'a> {
        self.argv
    }

    /// Argument `i` (`0` is the command's name).
    pub fn arg(&self, i: usize) -> Option<&'a str> {
        self.argv.iter().nth(i)
    }

    /// The time of this step.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the command started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since the command started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.started
    }

    /// The request id of this command (unique among running commands).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The board.
    pub fn platform(&mut self) -> &mut P {
        self.platform
    }

    /// The board and the output at once, to print text that borrows the
    /// board.
    pub fn split(&mut self) -> (&mut P, &mut Printer<'a>) {
        (self.platform, &mut self.printer)
    }

    /// The command's own state between steps: [`STATE_WORDS`] words, zero
    /// at the first step.
    ///
    /// ```
    /// use corral_agent_core::{Ctx, Platform, Step};
    ///
    /// /// `dots N`: prints N dots, as many per step as the output takes.
    /// fn dots<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
    ///     let n = cx.arg(1).and_then(|a| a.parse::<u32>().ok()).unwrap_or(10);
    ///     let done = cx.state()[0];
    ///     let want = ((n - done) as usize).min(16);
    ///     let took = cx.stdout().write(&[b'.'; 16][..want]);
    ///     cx.state()[0] = done + took as u32;
    ///     if done + took as u32 == n { Step::Exit(0) } else { Step::Pending }
    /// }
    /// ```
    pub fn state(&mut self) -> &mut [u32; STATE_WORDS] {
        self.state
    }

    /// What the device can do, as the handshake reports it.
    pub fn limits(&mut self) -> Limits {
        limits(self.platform, self.max_commands)
    }

    /// The output.
    pub fn printer(&mut self) -> &mut Printer<'a> {
        &mut self.printer
    }

    /// Standard output.
    pub fn stdout(&mut self) -> Writer<'_, 'a> {
        self.printer.stdout()
    }

    /// Standard error.
    pub fn stderr(&mut self) -> Writer<'_, 'a> {
        self.printer.stderr()
    }

    /// See [`Printer::print`].
    pub fn print(&mut self, text: &str) {
        self.printer.print(text);
    }

    /// See [`Printer::eprint`].
    pub fn eprint(&mut self, text: &str) {
        self.printer.eprint(text);
    }

    /// See [`Printer::print_u64`].
    pub fn print_u64(&mut self, n: u64) {
        self.printer.print_u64(n);
    }

    /// See [`Printer::exit`].
    pub fn exit(&self, code: i32) -> Step {
        self.printer.exit(code)
    }
}

/// The device's limits with this platform and number of slots.
pub(crate) fn limits<P: Platform>(platform: &mut P, max_commands: u16) -> Limits {
    let store = platform.files().map(|f| f.info()).unwrap_or_default();
    Limits {
        max_commands,
        storage_bytes: store.capacity,
        storage_free: store.free,
        max_file: store.max_file,
    }
}
