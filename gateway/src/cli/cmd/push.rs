//! `corral push`.

use crate::cli::progress::{bytes_bar, human_bytes};
use crate::cli::{exit, CmdResult, Context, Failure, Target};
use crate::transfer;
use futures_util::StreamExt;
use std::path::PathBuf;
use tokio::io::AsyncSeekExt;

/// Copy a local file to a device (resumable, hash-checked).
///
/// The device writes the file under a temporary name and renames it into
/// place only after its SHA-256 matched, so REMOTE is never half-written.
/// An interrupted push (link lost, Ctrl-C) resumes where it stopped when
/// the same file is pushed to the same place again; the command says how
/// much was already there. A progress bar shows on a terminal.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The file to send.
    pub local: PathBuf,
    /// Where it goes on the device (relative paths are under the agent's
    /// root).
    pub remote: String,
    /// Permission bits on the device, octal (default: the local file's).
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub mode: Option<u32>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not octal permission bits, e.g. 755 or 0644"))
}

/// Tries of a push through a gateway whose device lost or gained bytes
/// between the question how much it has and the upload.
const TRIES: usize = 3;

/// Pushes the file.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let meta = tokio::fs::metadata(&cmd.local)
        .await
        .map_err(|e| Failure::usage(format!("{}: {e}", cmd.local.display())))?;
    if !meta.is_file() {
        return Err(Failure::usage(format!(
            "{} is not a regular file",
            cmd.local.display()
        )));
    }
    let mode = cmd.mode.unwrap_or_else(|| {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    });
    let size = meta.len();
    let (resumed, sent) = match ctx.target(&cmd.device).await? {
        Target::Direct(client) => {
            let bar = bytes_bar(size, "push");
            let out = transfer::push_file(
                &client,
                &cmd.local,
                &cmd.remote,
                Some(mode),
                &mut |done, _| bar.set_position(done),
            )
            .await;
            bar.finish_and_clear();
            let out = out?;
            (out.resumed_from, out.sent)
        }
        Target::Gateway(name) => via_gateway(ctx, &name, &cmd, size, mode).await?,
    };
    if resumed > 0 {
        eprintln!(
            "corral: resumed an interrupted push: {} of {} were already on the device, sent the other {}",
            human_bytes(resumed),
            human_bytes(size),
            human_bytes(sent)
        );
    }
    if crate::cli::stderr_is_terminal() {
        eprintln!(
            "pushed {} to {}:{} ({})",
            cmd.local.display(),
            cmd.device,
            cmd.remote,
            human_bytes(size)
        );
    }
    Ok(exit::OK)
}

async fn via_gateway(
    ctx: &Context,
    name: &str,
    cmd: &Cmd,
    size: u64,
    mode: u32,
) -> Result<(u64, u64), Failure> {
    let (hashed, sha) = transfer::hash_file(&cmd.local).await?;
    if hashed != size {
        return Err(Failure::refused(format!(
            "{} changed while it was read; push it again when it stays put",
            cmd.local.display()
        )));
    }
    let sha = transfer::hex(&sha);
    let mut last = None;
    for _ in 0..TRIES {
        let have = ctx
            .api
            .partial(name, &ctx.hold, &cmd.remote, size, &sha, mode)
            .await?;
        let mut file = tokio::fs::File::open(&cmd.local)
            .await
            .map_err(|e| Failure::usage(format!("opening {}: {e}", cmd.local.display())))?;
        file.seek(std::io::SeekFrom::Start(have))
            .await
            .map_err(|e| Failure::usage(format!("reading {}: {e}", cmd.local.display())))?;
        let bar = bytes_bar(size, "push");
        bar.set_position(have);
        let counter = bar.clone();
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(move |r| {
                if let Ok(b) = r {
                    counter.inc(b.len() as u64);
                }
            });
        let r = ctx
            .api
            .upload(
                name,
                &ctx.hold,
                &cmd.remote,
                size,
                &sha,
                have,
                mode,
                reqwest::Body::wrap_stream(stream),
            )
            .await;
        bar.finish_and_clear();
        match r {
            Ok(reply) => return Ok((reply.resumed_from, reply.sent)),
            Err(e) if e.kind() == Some("resume_mismatch") => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(Failure::from)
        .unwrap_or_else(|| Failure::infra("the push did not settle")))
}
