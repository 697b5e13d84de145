//! The commands every board gets: `info`, `echo`, `sleep` and `hash`.
//!
//! They double as examples of the three ways a command keeps its state
//! between steps: `info`, `echo` and `hash` print everything at every step
//! and let [`Printer::print`](crate::Printer::print) skip what is already
//! out; `sleep` recomputes its deadline from its start time and argument and
//! needs no state at all. A command that walks through something (a memory
//! test, a counter) keeps its position in [`Ctx::state`].

use core::marker::PhantomData;

use crate::command::{Command, Ctx, Step};
use crate::platform::Platform;
use crate::store::FileStore;
use crate::text;

struct Builtins<P>(PhantomData<P>);

impl<P: Platform> Builtins<P> {
    const TABLE: &'static [Command<P>] = &[
        Command::new("info", "- print identity, limits and commands", info::<P>),
        Command::new("echo", "ARGS... - print the arguments", echo::<P>),
        Command::new("sleep", "MS - wait MS milliseconds", sleep::<P>),
        Command::new(
            "hash",
            "FILE - print the SHA-256 of a stored file",
            hash::<P>,
        ),
    ];
}

/// The built-in commands, for a board that wants to list or wrap them.
pub fn builtins<P: Platform>() -> &'static [Command<P>] {
    Builtins::<P>::TABLE
}

/// Every command of the platform, in the order `info` and the handshake list
/// them: the board's own, then the built-ins it did not replace.
pub(crate) fn all<P: Platform>() -> impl Iterator<Item = &'static Command<P>> + Clone {
    let board = P::COMMANDS;
    board.iter().chain(
        builtins::<P>()
            .iter()
            .filter(move |b| !board.iter().any(|c| c.name == b.name)),
    )
}

/// The command `name` runs.
pub(crate) fn find<P: Platform>(name: &str) -> Option<&'static Command<P>> {
    all::<P>().find(|c| c.name == name)
}

/// `info`: identity, limits and commands, one fact per line.
fn info<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
    let limits = cx.limits();
    let (platform, p) = cx.split();
    let id = platform.identity();
    for (label, value) in [
        ("name: ", id.name),
        ("board: ", id.board),
        ("serial: ", id.serial),
        ("firmware: ", id.firmware),
    ] {
        p.print(label);
        p.print(value);
        p.print("\n");
    }
    p.print("boot id: ");
    p.print_hex(&id.boot_id.to_be_bytes());
    p.print("\nmax commands: ");
    p.print_u64(u64::from(limits.max_commands));
    if limits.storage_bytes > 0 {
        p.print("\nstorage: ");
        p.print_u64(limits.storage_bytes);
        p.print(" bytes, ");
        p.print_u64(limits.storage_free);
        p.print(" free, largest file ");
        p.print_u64(limits.max_file);
    } else {
        p.print("\nstorage: none");
    }
    p.print("\ncommands:\n");
    for c in all::<P>() {
        p.print("  ");
        p.print(c.name);
        p.print(" ");
        p.print(c.help);
        p.print("\n");
    }
    p.exit(0)
}

/// `echo ARGS...`: the arguments separated by spaces, and a newline.
fn echo<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
    for (i, arg) in cx.argv().iter().skip(1).enumerate() {
        if i > 0 {
            cx.print(" ");
        }
        cx.print(arg);
    }
    cx.print("\n");
    cx.exit(0)
}

/// `sleep MS`: exits after MS milliseconds, without blocking: it asks to be
/// called again at its deadline.
fn sleep<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
    let Some(ms) = cx
        .arg(1)
        .and_then(text::parse_u64)
        .filter(|_| cx.arg(2).is_none())
    else {
        cx.eprint("usage: sleep MS\n");
        return cx.exit(2);
    };
    // Not `+ Duration::from_millis(ms)`: that divides a `u64`.
    let until = cx.started().add_micros(ms.saturating_mul(1000));
    if cx.now() >= until {
        Step::Exit(0)
    } else {
        Step::Wait(until)
    }
}

/// `hash FILE`: the file's SHA-256 in hex, as the store verified it.
fn hash<P: Platform>(cx: &mut Ctx<'_, P>) -> Step {
    let Some(path) = cx.arg(1).filter(|_| cx.arg(2).is_none()) else {
        cx.eprint("usage: hash FILE\n");
        return cx.exit(2);
    };
    let (platform, p) = cx.split();
    let result = match platform.files() {
        Some(files) => files.hash(path).map_err(|e| e.message),
        None => Err("this device has no file store"),
    };
    match result {
        Ok(h) => {
            p.print_hex(&h.sha256);
            p.print("\n");
            p.exit(0)
        }
        Err(why) => {
            p.eprint("hash: ");
            p.eprint(why);
            p.eprint("\n");
            p.exit(1)
        }
    }
}
