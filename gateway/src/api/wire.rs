//! The HTTP API's request and response bodies, shared by the server and the
//! CLI's client. `gateway/openapi.yaml` documents them for everyone else.

use serde::{Deserialize, Serialize};

/// Response header naming a running exec, for `POST /v1/execs/{id}/cancel`.
pub const EXEC_ID_HEADER: &str = "x-corral-exec";
/// Response header of a download: the whole file's size.
pub const SIZE_HEADER: &str = "x-corral-size";
/// Response header of a download: the whole file's SHA-256, hex.
pub const SHA256_HEADER: &str = "x-corral-sha256";

/// Largest standard input an exec request carries. The input is sent whole
/// before the command's output is read, so it must fit the agent's
/// per-session buffer (16 MiB on `corral-agent`) with room to spare.
pub const MAX_STDIN: usize = 4 << 20;

/// `POST /v1/devices/{name}/exec`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Environment additions, as `[key, value]` pairs.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory on the device; empty for the agent's default.
    #[serde(default)]
    pub cwd: String,
    /// Device-side timeout in milliseconds: the device kills the command
    /// after it.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Standard input, base64, sent whole and then closed. Without it the
    /// command's stdin is empty.
    #[serde(default)]
    pub stdin_b64: Option<String>,
}

/// One line of an exec's NDJSON response (`application/x-ndjson`). The last
/// line is always `exit` or `error`; a stream that ends without one was cut.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecLine {
    /// The command runs.
    Started {
        /// Its process id on the device (0 where there is none).
        pid: u32,
    },
    /// Standard output bytes, base64.
    Stdout {
        /// The bytes.
        data: String,
    },
    /// Standard error bytes, base64.
    Stderr {
        /// The bytes.
        data: String,
    },
    /// The command ended.
    Exit {
        /// `exited`, `signaled`, `timed_out`, `cancelled` or
        /// `failed_to_start`.
        reason: String,
        /// Exit code (meaningful for `exited`).
        code: i32,
        /// Signal number, 0 if none.
        signal: u8,
        /// What a shell would report: the code, or 128 + signal.
        status: i32,
        /// Run time on the device, milliseconds.
        duration_ms: u64,
        /// Output bytes the device could not keep while the link was down.
        #[serde(default)]
        output_dropped: u64,
        /// Explanation (why it failed to start).
        #[serde(default)]
        detail: String,
    },
    /// The request failed before the command ended.
    Error {
        /// True for infrastructure failures (link lost, device rebooted),
        /// false when the device refused the request.
        infrastructure: bool,
        /// What happened.
        message: String,
    },
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// For people; the CLI prints it as it is.
    pub error: String,
    /// For programs; one of [`ErrorBody::KINDS`].
    pub kind: String,
}

impl ErrorBody {
    /// Every `kind`: `unknown_device` (404), `ambiguous_device` (400),
    /// `bad_request` (400), `unauthorized` (401), `lease_busy` (409),
    /// `lease_not_held` (409), `resume_mismatch` (409), `bad_offset` (416),
    /// `device` (422: the device refused, e.g. no such file),
    /// `infrastructure` (502: link lost, device rebooted or silent),
    /// `device_unavailable` (503: offline, connecting, quarantined) and
    /// `internal` (500).
    pub const KINDS: &'static [&'static str] = &[
        "unknown_device",
        "ambiguous_device",
        "bad_request",
        "unauthorized",
        "lease_busy",
        "lease_not_held",
        "resume_mismatch",
        "bad_offset",
        "device",
        "infrastructure",
        "device_unavailable",
        "internal",
    ];

    /// True if the lab failed rather than the request.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "device_unavailable" | "infrastructure" | "internal"
        )
    }
}

/// `POST /v1/devices/{name}/partial/{path}`: how much of a push the device
/// already holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartialReply {
    /// Bytes of this content (same size and SHA-256) already on the device;
    /// an upload starts at this offset.
    pub have: u64,
}

/// Result of an upload (`PUT /v1/devices/{name}/files/{path}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushReply {
    /// Bytes the device already had before this upload.
    pub resumed_from: u64,
    /// Bytes sent by this upload.
    pub sent: u64,
    /// The whole file's size.
    pub size: u64,
}

/// A directory entry (`name` set) or the facts about one path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatReply {
    /// Entry name; empty for a stat.
    #[serde(default)]
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// A file's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashReply {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// `POST /v1/devices/{name}/leases`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseBody {
    /// Who takes it (shown to others who wait).
    pub holder: String,
    /// Time-to-live in milliseconds; every request made under the lease
    /// renews it.
    pub ttl_ms: u64,
    /// Wait up to this long for a leased device; 0 fails at once.
    #[serde(default)]
    pub wait_ms: u64,
}

/// A lease, as the API reports it (the same fields as
/// [`LeaseInfo`](crate::lease::LeaseInfo)).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseReply {
    /// The lease id; pass it as `?lease=ID` (CLI: `--lease`, `CORRAL_LEASE`).
    pub id: u64,
    /// Who holds it.
    pub holder: String,
    /// Milliseconds until it runs out unless renewed.
    pub expires_in_ms: u64,
    /// Its time-to-live.
    pub ttl_ms: u64,
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    /// The job file's text.
    pub toml: String,
    /// The job file's path on the gateway's machine: it names the file in
    /// errors and anchors the job's relative `local` paths.
    pub origin: String,
    /// Run on this device …
    #[serde(default)]
    pub device: Option<String>,
    /// … or on a free device with all these labels (`key=value`). With
    /// neither, the job's own `labels` choose.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Who runs it (shown as the lease holder).
    pub holder: String,
    /// Wait up to this long for a free device; 0 fails at once.
    #[serde(default)]
    pub wait_ms: u64,
}
