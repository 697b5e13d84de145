//! What a board gives the agent: identity, commands, a file store and reset.

use crate::command::Command;
use crate::store::FileStore;

/// Who the device is, for [`Body::DeviceInfo`](corral_protocol::Body::DeviceInfo)
/// and the `info` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Name the device gives itself, e.g. `"bench-3"`.
    pub name: &'a str,
    /// Board type, e.g. `"lm3s6965"`.
    pub board: &'a str,
    /// Serial number (empty if the board has none).
    pub serial: &'a str,
    /// Firmware version.
    pub firmware: &'a str,
    /// Changes at every boot. It is also the link's session id, so it must
    /// not be 0.
    pub boot_id: u32,
}

/// The board side of the agent.
///
/// A board implements this once. Everything the agent does to the device
/// goes through it: it never touches hardware or reads a clock itself.
///
/// ```
/// use corral_agent_core::{Command, Ctx, Identity, NoFiles, Platform, Step};
///
/// struct Board {
///     led: bool,
/// }
///
/// fn led(cx: &mut Ctx<'_, Board>) -> Step {
///     let on = cx.arg(1) == Some("on");
///     cx.platform().led = on;
///     cx.exit(0)
/// }
///
/// impl Platform for Board {
///     type Files = NoFiles;
///     const COMMANDS: &'static [Command<Self>] = &[Command::new("led", "on|off - switch the LED", led)];
///
///     fn identity(&self) -> Identity<'_> {
///         Identity { name: "demo", board: "demo-board", serial: "", firmware: "0.1.0", boot_id: 1 }
///     }
///     fn files(&mut self) -> Option<&mut NoFiles> {
///         None
///     }
///     fn reset(&mut self) {
///         // A real board resets here and never returns.
///     }
/// }
/// # let _ = Board { led: false };
/// ```
pub trait Platform: Sized + 'static {
    /// The file store; [`NoFiles`](crate::NoFiles) if the board has none.
    type Files: FileStore;

    /// The board's own commands. They are looked up before the built-ins
    /// (`info`, `echo`, `sleep`, `hash`), so a board may replace one.
    const COMMANDS: &'static [Command<Self>] = &[];

    /// The device's identity.
    fn identity(&self) -> Identity<'_>;

    /// The file store. Must answer the same (`Some` or `None`) every time:
    /// the agent offers the `FILES` feature in the handshake only if it is
    /// `Some` when the agent is created.
    fn files(&mut self) -> Option<&mut Self::Files>;

    /// Restarts the device. Called only after the `Ok` reply to
    /// [`Body::Reset`](corral_protocol::Body::Reset) was acknowledged by the
    /// gateway (or, if the gateway stopped answering, after a grace period).
    /// A board does not return from here; if it does (a test double), the
    /// agent carries on.
    fn reset(&mut self);
}
