//! Terminals: pseudo-terminal pairs the gateway opens like a USB serial adapter, and
//! existing serial ports, both in raw mode and read without blocking a thread.
//!
//! Heads up: a pty master reads `EIO` whenever no process has the slave open, which
//! would end the link every time the gateway closes and reopens the port. The link
//! therefore keeps a slave descriptor of its own open for the pty's whole life. That
//! also keeps the raw-mode settings on the terminal between openers, and means bytes
//! sent towards a closed port wait in the terminal's buffer (and then hold the sender
//! back) instead of vanishing.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, ControlModes, OptionalActions};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

/// A terminal descriptor, optionally opened exclusively (`TIOCEXCL`), which is
/// given back when the descriptor closes so the port is usable again afterwards.
#[derive(Debug)]
pub(crate) struct TtyFd {
    fd: OwnedFd,
    exclusive: bool,
}

impl AsFd for TtyFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for TtyFd {
    fn drop(&mut self) {
        if self.exclusive {
            // Exclusivity is a property of the terminal, not of our descriptor: if
            // another descriptor keeps the terminal open (a pty's keep-alive slave),
            // it would outlive us and lock everyone else out.
            let _ = termios::ioctl_tiocnxcl(&self.fd);
        }
    }
}

/// A non-blocking byte stream over a terminal.
///
/// Tokio's pipe types do the readiness bookkeeping: a terminal reads and writes
/// like a pipe, and they accept any descriptor when told not to check it for a
/// FIFO. Each stream owns its own duplicates of the terminal's descriptor, so
/// dropping it at the end of a session leaves the terminal itself open.
#[derive(Debug)]
pub(crate) struct TtyStream {
    rx: pipe::Receiver,
    tx: pipe::Sender,
}

impl TtyStream {
    fn new(fd: &impl AsFd) -> io::Result<Self> {
        let fd = fd.as_fd();
        // O_NONBLOCK lives on the open file description, so this covers the dups.
        rustix::io::ioctl_fionbio(fd, true)?;
        Ok(TtyStream {
            rx: pipe::Receiver::from_owned_fd_unchecked(fd.try_clone_to_owned()?)?,
            tx: pipe::Sender::from_owned_fd_unchecked(fd.try_clone_to_owned()?)?,
        })
    }
}

impl AsyncRead for TtyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rx).poll_read(cx, buf)
    }
}

impl AsyncWrite for TtyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tx).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A serial line has no end-of-stream signal; it just goes quiet.
        Poll::Ready(Ok(()))
    }
}

/// Puts a terminal in raw mode: bytes pass one by one, unchanged, with no echo, no
/// line editing, no signals and no XON/XOFF.
fn make_raw(fd: &TtyFd, baud: Option<u32>) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    t.make_raw();
    // Ignore modem control lines, or a USB adapter without DCD wired reads nothing.
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    if let Some(baud) = baud {
        t.set_speed(baud)?;
    }
    termios::tcsetattr(fd, OptionalActions::Now, &t)?;
    Ok(())
}

/// A pseudo-terminal pair whose slave plays the device's serial port.
#[derive(Debug)]
pub(crate) struct Pty {
    master: OwnedFd,
    /// Kept open so the master never reads EIO between openers (see module docs).
    _keep_alive: TtyFd,
    slave_path: PathBuf,
    link: Option<SymlinkGuard>,
}

impl Pty {
    /// Creates a pty pair in raw mode, and the symlink `link` to its slave if given.
    pub fn open(link: Option<&Path>) -> io::Result<Pty> {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave_path = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
        let slave = rustix::fs::open(
            &slave_path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let keep_alive = TtyFd {
            fd: slave,
            exclusive: false,
        };
        make_raw(&keep_alive, None)?;
        let link = link
            .map(|link| SymlinkGuard::create(link, &slave_path))
            .transpose()?;
        Ok(Pty {
            master,
            _keep_alive: keep_alive,
            slave_path,
            link,
        })
    }

    /// A stream over the master side.
    pub fn stream(&self) -> io::Result<TtyStream> {
        TtyStream::new(&self.master)
    }

    /// The path to open as the serial port, e.g. `/dev/pts/7`.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// The stable symlink to the slave, if one was asked for.
    pub fn link_path(&self) -> Option<&Path> {
        self.link.as_ref().map(|l| l.link.as_path())
    }
}

/// Opens an existing terminal (a real serial port or a pty slave) exclusively, in
/// raw mode, optionally at a line speed.
pub(crate) fn open_serial(path: &Path, baud: Option<u32>) -> io::Result<TtyFd> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !termios::isatty(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a terminal (serial: needs a tty such as /dev/ttyUSB0 or a pty slave)",
        ));
    }
    termios::ioctl_tiocexcl(&fd)?;
    let fd = TtyFd {
        fd,
        exclusive: true,
    };
    make_raw(&fd, baud)?;
    Ok(fd)
}

impl TtyFd {
    /// A stream over this terminal.
    pub fn stream(&self) -> io::Result<TtyStream> {
        TtyStream::new(&self.fd)
    }
}

/// A symlink we created, removed again when dropped if it still points where we
/// made it point (someone else may have taken the name over meanwhile).
#[derive(Debug)]
struct SymlinkGuard {
    link: PathBuf,
    target: PathBuf,
}

impl SymlinkGuard {
    fn create(link: &Path, target: &Path) -> io::Result<SymlinkGuard> {
        if let Ok(meta) = fs::symlink_metadata(link) {
            if !meta.file_type().is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a symlink; remove it or choose another link path",
                        link.display()
                    ),
                ));
            }
        }
        let name = link.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", link.display()),
            )
        })?;
        // Create under a temporary name and rename over the link, so a program
        // opening the link never finds it missing or half-made.
        let mut tmp_name = OsStr::new(".").to_owned();
        tmp_name.push(name);
        tmp_name.push(format!(".faultlink-{}", std::process::id()));
        let tmp = link.with_file_name(tmp_name);
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        if let Err(e) = fs::rename(&tmp, link) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(SymlinkGuard {
            link: link.to_owned(),
            target: target.to_owned(),
        })
    }
}

impl Drop for SymlinkGuard {
    fn drop(&mut self) {
        if fs::read_link(&self.link).is_ok_and(|t| t == self.target) {
            let _ = fs::remove_file(&self.link);
        }
    }
}
