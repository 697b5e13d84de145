//! `corral pull`.

use crate::api::wire::{SHA256_HEADER, SIZE_HEADER};
use crate::cli::progress::{bytes_bar, human_bytes};
use crate::cli::{exit, CmdResult, Context, Failure, Target};
use crate::transfer;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Copy a file from a device (resumable, hash-checked).
///
/// The data goes to a hidden partial file next to LOCAL (`.NAME.corral-partial`),
/// which is renamed to LOCAL only once the SHA-256 of the whole file matches
/// the device's. An interrupted pull resumes from the partial file when run
/// again, and says how much it reused. A progress bar shows on a terminal.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(crate::device_help!(), "\n\n", crate::exit_codes!()))]
pub struct Cmd {
    /// The device.
    pub device: String,
    /// The file on the device.
    pub remote: String,
    /// Where to put it (a directory: the file keeps its name).
    pub local: PathBuf,
}

/// Pulls the file.
pub async fn run(ctx: &Context, cmd: Cmd) -> CmdResult {
    let local = if cmd.local.is_dir() {
        let base = Path::new(&cmd.remote)
            .file_name()
            .ok_or_else(|| Failure::usage(format!("{} names no file", cmd.remote)))?;
        cmd.local.join(base)
    } else {
        cmd.local.clone()
    };
    let partial = transfer::partial_path(&local);
    let (resumed, size) = match ctx.target(&cmd.device).await? {
        Target::Direct(client) => {
            let size = client
                .stat(&cmd.remote, Duration::from_secs(30))
                .await?
                .size;
            let mut resumed = file_len(&partial).await;
            let bar = bytes_bar(size, "pull");
            let mut r = transfer::pull_file(&client, &cmd.remote, &local, &mut |done| {
                bar.set_position(done)
            })
            .await;
            // A partial copy of an older version of the file fails the hash
            // check and is thrown away: start over once.
            if resumed > 0 && matches!(r, Err(transfer::TransferError::HashMismatch { .. })) {
                resumed = 0;
                r = transfer::pull_file(&client, &cmd.remote, &local, &mut |done| {
                    bar.set_position(done)
                })
                .await;
            }
            bar.finish_and_clear();
            r?;
            (resumed, size)
        }
        Target::Gateway(name) => {
            let mut outcome = via_gateway(ctx, &name, &cmd.remote, &local, &partial).await;
            if let Err(Restart) = outcome {
                let _ = tokio::fs::remove_file(&partial).await;
                outcome = via_gateway(ctx, &name, &cmd.remote, &local, &partial).await;
            }
            match outcome {
                Ok(v) => v,
                Err(Restart) => {
                    return Err(Failure::infra(format!(
                        "pulled {} twice and its SHA-256 did not match the device's either time (is it changing?)",
                        cmd.remote
                    )))
                }
                Err(Failed(f)) => return Err(f),
            }
        }
    };
    if resumed > 0 {
        eprintln!(
            "corral: resumed an interrupted pull: {} of {} were already here",
            human_bytes(resumed),
            human_bytes(size)
        );
    }
    if crate::cli::stderr_is_terminal() {
        eprintln!(
            "pulled {}:{} to {} ({})",
            cmd.device,
            cmd.remote,
            local.display(),
            human_bytes(size)
        );
    }
    Ok(exit::OK)
}

async fn file_len(p: &Path) -> u64 {
    tokio::fs::metadata(p).await.map(|m| m.len()).unwrap_or(0)
}

/// Why a pull through the gateway stopped.
enum Stop {
    /// Start over without the partial file.
    Restart,
    /// Give up.
    Failed(Failure),
}
use Stop::{Failed, Restart};

impl From<crate::api::client::ApiFailure> for Stop {
    fn from(e: crate::api::client::ApiFailure) -> Self {
        Failed(e.into())
    }
}

fn local_err(path: &Path, what: &str, e: std::io::Error) -> Stop {
    Failed(Failure::refused(format!("{what} {}: {e}", path.display())))
}

/// The SHA-256 state after the bytes already in the partial file.
async fn hash_prefix(partial: &Path) -> Result<(u64, Sha256), std::io::Error> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    let mut f = match tokio::fs::File::open(partial).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, h)),
        Err(e) => return Err(e),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).await?;
        if k == 0 {
            return Ok((n, h));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

async fn via_gateway(
    ctx: &Context,
    name: &str,
    remote: &str,
    local: &Path,
    partial: &Path,
) -> Result<(u64, u64), Stop> {
    if let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| local_err(dir, "creating", e))?;
    }
    let (have, mut hasher) = hash_prefix(partial)
        .await
        .map_err(|e| local_err(partial, "reading", e))?;
    let resp = match ctx.api.download(name, &ctx.hold, remote, have).await {
        Ok(r) => r,
        Err(e) if e.kind() == Some("bad_offset") && have > 0 => return Err(Restart),
        Err(e) => return Err(e.into()),
    };
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(size), Some(want)) = (
        header(SIZE_HEADER).and_then(|s| s.parse::<u64>().ok()),
        header(SHA256_HEADER),
    ) else {
        return Err(Failed(Failure::infra(
            "the gateway's download carried no size or hash",
        )));
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .await
        .map_err(|e| local_err(partial, "opening", e))?;
    let bar = bytes_bar(size, "pull");
    bar.set_position(have);
    let mut stream = resp.bytes_stream();
    let mut at = have;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                bar.finish_and_clear();
                let _ = file.flush().await;
                return Err(Failed(Failure::infra(format!(
                    "the download of {remote} broke after {} of {}: {e}; run the same command again to resume",
                    human_bytes(at),
                    human_bytes(size)
                ))));
            }
        };
        if at + chunk.len() as u64 > size {
            bar.finish_and_clear();
            return Err(Failed(Failure::infra(
                "the gateway sent more bytes than the file has",
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| local_err(partial, "writing", e))?;
        hasher.update(&chunk);
        at += chunk.len() as u64;
        bar.set_position(at);
    }
    bar.finish_and_clear();
    file.flush()
        .await
        .map_err(|e| local_err(partial, "writing", e))?;
    file.sync_all()
        .await
        .map_err(|e| local_err(partial, "syncing", e))?;
    drop(file);
    if at != size {
        return Err(Failed(Failure::infra(format!(
            "the download of {remote} ended after {} of {}; run the same command again to resume",
            human_bytes(at),
            human_bytes(size)
        ))));
    }
    let got = transfer::hex(&hasher.finalize());
    if got != want {
        return if have > 0 {
            Err(Restart)
        } else {
            let _ = tokio::fs::remove_file(partial).await;
            Err(Failed(Failure::infra(format!(
                "pulled {remote}: SHA-256 {got} does not match the device's {want}"
            ))))
        };
    }
    tokio::fs::rename(partial, local)
        .await
        .map_err(|e| local_err(local, "moving the file into place at", e))?;
    Ok((have, size))
}
