//! The sample commands every Corral board carries besides the built-ins:
//! what a test farm needs to check that passing, failing, crashing and
//! chatty tests are all reported for what they are.
//!
//! | command | what it does | what the gateway reports |
//! |---|---|---|
//! | `selftest` | checks RAM, SHA-256 and the clock, prints each | exit 0: pass |
//! | `selftest-fail` | a self-test whose sensor check fails | exit 1: a test failure |
//! | `crash` | panics: the board prints the panic and resets | the link resets: an infrastructure error |
//! | `flood N` | prints N numbered lines (44 bytes each) | all of them, in order, paced by credit |
//! | `uptime` | milliseconds since boot | exit 0 |
//! | `hang` | spins forever, answering nothing, as wedged firmware does | the link dies; the gateway's recovery ladder (reset, power cycle, quarantine) takes over |

use core::time::Duration;

use corral_agent_core::{Command, Ctx, Step};
use sha2::{Digest, Sha256};

use crate::Firmware;

/// The table the firmware's platform offers.
pub const COMMANDS: &[Command<Firmware>] = &[
    Command::new(
        "selftest",
        "- check RAM, SHA-256 and the clock; exit 0",
        selftest,
    ),
    Command::new(
        "selftest-fail",
        "- a self-test that fails (exit 1)",
        selftest_fail,
    ),
    Command::new("crash", "- panic: the board resets", crash),
    Command::new("flood", "N - print N numbered lines", flood),
    Command::new("uptime", "- milliseconds since boot", uptime),
    Command::new("hang", "- wedge the firmware (until reset)", hang),
];

/// A walking-ones pattern through a buffer on the stack: every bit of every
/// byte must hold a 1 and a 0.
fn ram_ok() -> bool {
    let mut buf = [0u8; 256];
    for bit in 0..8 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (1u8 << bit) ^ (i as u8);
        }
        // Keep the compiler from proving the check always holds.
        let buf = core::hint::black_box(&mut buf);
        if buf
            .iter()
            .enumerate()
            .any(|(i, b)| *b != (1u8 << bit) ^ (i as u8))
        {
            return false;
        }
    }
    true
}

/// SHA-256 of "abc", FIPS 180-2's first example: the engine that checks
/// every push must itself be right.
fn sha_ok() -> bool {
    const ABC: [u8; 32] = [
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
        0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
        0x15, 0xad,
    ];
    let got: [u8; 32] = Sha256::digest(core::hint::black_box(b"abc")).into();
    got == ABC
}

/// How long `selftest` waits to see the clock move.
const CLOCK_WAIT: Duration = Duration::from_millis(10);

/// `selftest`: RAM, SHA-256, then the clock (which needs a wait: the first
/// step asks to be called back, the second checks the time moved on).
fn selftest(cx: &mut Ctx<'_, Firmware>) -> Step {
    let due = cx.started() + CLOCK_WAIT;
    if cx.now() < due {
        return Step::Wait(due);
    }
    let ram = ram_ok();
    let sha = sha_ok();
    cx.print(if ram { "ram: ok\n" } else { "ram: FAIL\n" });
    cx.print(if sha {
        "sha256: ok\n"
    } else {
        "sha256: FAIL\n"
    });
    cx.print("clock: ok\n");
    if ram && sha {
        cx.print("selftest: pass\n");
        cx.exit(0)
    } else {
        cx.print("selftest: FAIL\n");
        cx.exit(1)
    }
}

/// `selftest-fail`: a self-test whose (imaginary) sensor reads wrong.
fn selftest_fail(cx: &mut Ctx<'_, Firmware>) -> Step {
    cx.print("ram: ok\n");
    cx.eprint("sensor: expected 42, read 0\nselftest: FAIL\n");
    cx.exit(1)
}

/// `crash`: panics, as a firmware bug would.
fn crash(_: &mut Ctx<'_, Firmware>) -> Step {
    panic!("crash command");
}

/// Line `i` of `flood`: `NNNNNN ` and the alphabet, 44 bytes.
fn flood_line(i: u32, buf: &mut [u8; 44]) {
    let mut n = i;
    for d in buf[..6].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf[6] = b' ';
    buf[7..43].copy_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz");
    buf[43] = b'\n';
}

/// Parses a decimal number.
fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    s.bytes().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `flood N`: prints N lines, as fast as the gateway's credit allows. The
/// line number and the bytes of it already out live in the command state,
/// so a line cut by a full buffer continues where it stopped.
fn flood(cx: &mut Ctx<'_, Firmware>) -> Step {
    let Some(lines) = cx
        .arg(1)
        .and_then(parse_u32)
        .filter(|_| cx.arg(2).is_none())
    else {
        cx.eprint("usage: flood N (at most 999999999)\n");
        return cx.exit(2);
    };
    loop {
        let [line, done, ..] = *cx.state();
        if line >= lines {
            return Step::Exit(0);
        }
        let mut buf = [0u8; 44];
        flood_line(line, &mut buf);
        let rest = &buf[done as usize..];
        let took = cx.stdout().write(rest);
        if took < rest.len() {
            // Full: the agent calls again once there is room.
            cx.state()[1] = done + took as u32;
            return Step::Pending;
        }
        let st = cx.state();
        st[0] = line + 1;
        st[1] = 0;
    }
}

/// `hang`: never returns, so the agent stops answering, even keepalives.
/// Only a reset (the watchdog a real board would have, or the gateway's
/// power cycle) brings the board back.
fn hang(_: &mut Ctx<'_, Firmware>) -> Step {
    loop {
        core::hint::spin_loop();
    }
}

/// `uptime`: milliseconds since boot.
fn uptime(cx: &mut Ctx<'_, Firmware>) -> Step {
    let ms = cx.now().as_micros() / 1000;
    cx.print_u64(ms);
    cx.print("\n");
    cx.exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_pass_on_working_hardware() {
        assert!(ram_ok());
        assert!(sha_ok());
    }

    #[test]
    fn flood_lines_are_numbered_and_fixed_width() {
        let mut buf = [0u8; 44];
        flood_line(123, &mut buf);
        assert_eq!(&buf[..], b"000123 0123456789abcdefghijklmnopqrstuvwxyz\n");
        assert_eq!(parse_u32("100"), Some(100));
        assert_eq!(parse_u32("1x"), None);
        assert_eq!(parse_u32(""), None);
        assert_eq!(parse_u32("9999999999"), None);
    }
}
