//! Files between this machine and a device: push with resume and hash
//! verification, pull with resume into a temporary file that is renamed into
//! place only after its SHA-256 matched the device's.
//!
//! Used by the job runner, the HTTP API and the CLI's direct mode.

use corral_io::client::{ClientError, DeviceClient, PushOutcome, TransferOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The local side (a file to read or write).
    #[error("{0}")]
    Local(String),
    /// The device or the link.
    #[error("{0}")]
    Device(#[from] ClientError),
    /// The pulled file's hash did not match the device's.
    #[error("pulled {path}: SHA-256 {got} does not match the device's {want}")]
    HashMismatch {
        /// The local file.
        path: String,
        /// What we computed.
        got: String,
        /// What the device said.
        want: String,
    },
}

/// Hex of a hash.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and size of a local file (on a blocking thread).
pub async fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), TransferError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(u64, [u8; 32]), TransferError> {
        use std::io::Read;
        let mut f = std::fs::File::open(&p)
            .map_err(|e| TransferError::Local(format!("opening {}: {e}", p.display())))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = f
                .read(&mut buf)
                .map_err(|e| TransferError::Local(format!("reading {}: {e}", p.display())))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            n += k as u64;
        }
        Ok((n, h.finalize().into()))
    })
    .await
    .map_err(|e| TransferError::Local(format!("hashing {}: {e}", path.display())))?
}

/// Pushes a local file; `mode` defaults to the local file's permissions.
pub async fn push_file(
    client: &DeviceClient,
    local: &Path,
    remote: &str,
    mode: Option<u32>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<PushOutcome, TransferError> {
    let meta = tokio::fs::metadata(local)
        .await
        .map_err(|e| TransferError::Local(format!("{}: {e}", local.display())))?;
    if !meta.is_file() {
        return Err(TransferError::Local(format!(
            "{} is not a regular file",
            local.display()
        )));
    }
    let mode = mode.unwrap_or_else(|| {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    });
    let (size, sha) = hash_file(local).await?;
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| TransferError::Local(format!("opening {}: {e}", local.display())))?;
    let opts = TransferOptions::default();
    let out = client
        .push(&mut file, size, sha, remote, mode, &opts, &mut |done| {
            progress(done, size)
        })
        .await?;
    Ok(out)
}

/// Where a pull keeps what it has so far.
pub fn partial_path(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pull".into());
    local.with_file_name(format!(".{name}.corral-partial"))
}

/// Pulls a device file to `local`. An interrupted pull resumes from the
/// partial file; `local` appears only once the whole file's hash matched.
pub async fn pull_file(
    client: &DeviceClient,
    remote: &str,
    local: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(u64, [u8; 32]), TransferError> {
    if let Some(dir) = local.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| TransferError::Local(format!("creating {}: {e}", dir.display())))?;
    }
    let partial = partial_path(local);
    let (have, mut hasher) = match hash_prefix(&partial).await {
        Ok(v) => v,
        Err(_) => (0, Sha256::new()),
    };
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .await
        .map_err(|e| TransferError::Local(format!("opening {}: {e}", partial.display())))?;
    let mut sink = HashingWriter {
        file,
        hasher: &mut hasher,
    };
    let opts = TransferOptions::default();
    let (size, sha) = client
        .pull(remote, have, &mut sink, &opts, progress)
        .await?;
    sink.file
        .flush()
        .await
        .map_err(|e| TransferError::Local(format!("writing {}: {e}", partial.display())))?;
    sink.file
        .sync_all()
        .await
        .map_err(|e| TransferError::Local(format!("syncing {}: {e}", partial.display())))?;
    drop(sink);
    let got: [u8; 32] = hasher.finalize().into();
    if got != sha {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(TransferError::HashMismatch {
            path: local.display().to_string(),
            got: hex(&got),
            want: hex(&sha),
        });
    }
    tokio::fs::rename(&partial, local)
        .await
        .map_err(|e| TransferError::Local(format!("moving {} into place: {e}", local.display())))?;
    Ok((size, sha))
}

async fn hash_prefix(path: &Path) -> std::io::Result<(u64, Sha256)> {
    let bytes = tokio::fs::read(path).await?;
    let mut h = Sha256::new();
    h.update(&bytes);
    Ok((bytes.len() as u64, h))
}

/// Writes to a file and hashes what it writes.
struct HashingWriter<'a> {
    file: tokio::fs::File,
    hasher: &'a mut Sha256,
}

impl tokio::io::AsyncWrite for HashingWriter<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.file).poll_write(cx, buf) {
            std::task::Poll::Ready(Ok(n)) => {
                this.hasher.update(&buf[..n]);
                std::task::Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.file).poll_shutdown(cx)
    }
}
