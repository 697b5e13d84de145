//! The CLI's client of the gateway's HTTP API.

use super::wire::*;
use crate::report::JobResult;
use serde::de::DeserializeOwned;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiFailure {
    /// Nothing answers at the address.
    #[error("no gateway at {url} ({why}) — start one with `corral gateway --config gateway.toml`, or use a direct address like tcp://host:7878")]
    Unreachable {
        /// The gateway URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The gateway answered with an error.
    #[error("{}", .body.error)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error as the gateway put it.
        body: ErrorBody,
    },
    /// The connection broke, or the answer made no sense.
    #[error("{0}")]
    Broken(String),
}

impl ApiFailure {
    /// True if the lab failed rather than the request.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            ApiFailure::Unreachable { .. } | ApiFailure::Broken(_) => true,
            ApiFailure::Api { body, .. } => body.is_infrastructure(),
        }
    }

    /// The error kind the gateway gave (`lease_busy`, …), if it answered.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ApiFailure::Api { body, .. } => Some(&body.kind),
            _ => None,
        }
    }
}

/// How a request holds the device: the query parameters every device route
/// takes.
#[derive(Debug, Clone, Default)]
pub struct HoldArgs {
    /// A lease the caller holds (`corral lock`).
    pub lease: Option<u64>,
    /// Fail instead of waiting for a device someone else holds.
    pub no_wait: bool,
    /// Who is asking, shown to those who wait.
    pub holder: String,
}

impl HoldArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("holder", self.holder.clone())];
        if let Some(l) = self.lease {
            q.push(("lease", l.to_string()));
        }
        if self.no_wait {
            q.push(("no_wait", "true".into()));
        }
        q
    }
}

/// A connection to a gateway. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Percent-encodes a URL path segment.
fn segment(s: &str) -> String {
    encode(s, false)
}

/// Percent-encodes a device path for the tail of a URL, keeping `/`. A
/// leading `/` is kept as `%2F` so absolute device paths survive.
fn device_path(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!("%2F{}", encode(rest, true)),
        None => encode(p, true),
    }
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl ApiClient {
    /// A client for the gateway at `base` (`http://127.0.0.1:7700`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        ApiClient {
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                // reqwest's default TCP_USER_TIMEOUT (30 s) resets an upload
                // that the gateway reads at a slow device's pace (a 256 KiB
                // push at 115200 baud takes longer); the gateway has its
                // own timeouts for devices that stop answering.
                .tcp_user_timeout(None)
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// The gateway's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn device_url(&self, name: &str, rest: &str) -> String {
        format!("/v1/devices/{}{rest}", segment(name))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends a request; an error status becomes [`ApiFailure::Api`].
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiFailure> {
        let resp = rb.send().await.map_err(|e| {
            if e.is_connect() {
                ApiFailure::Unreachable {
                    url: self.base.clone(),
                    why: "nothing answers there".into(),
                }
            } else if e.is_builder() {
                ApiFailure::Unreachable {
                    url: self.base.clone(),
                    why: format!("not a usable URL: {e}"),
                }
            } else {
                ApiFailure::Broken(format!(
                    "talking to the gateway at {}: {}",
                    self.base,
                    error_chain(&e)
                ))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
            error: format!(
                "the gateway at {} answered {status}: {}",
                self.base,
                text.trim()
            ),
            kind: "internal".into(),
        });
        Err(ApiFailure::Api { status, body })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ApiFailure> {
        let resp = self.send(rb).await?;
        resp.json::<T>()
            .await
            .map_err(|e| ApiFailure::Broken(format!("reading the gateway's answer: {e}")))
    }

    /// Every device's status (`DeviceStatus` objects).
    pub async fn devices(&self) -> Result<Vec<serde_json::Value>, ApiFailure> {
        self.json(self.req(reqwest::Method::GET, "/v1/devices"))
            .await
    }

    /// One device's status.
    pub async fn device(&self, name: &str) -> Result<serde_json::Value, ApiFailure> {
        self.json(self.req(reqwest::Method::GET, &self.device_url(name, "")))
            .await
    }

    /// Starts a command; its NDJSON lines follow in the response body, and
    /// the [`EXEC_ID_HEADER`] names it for [`cancel_exec`](Self::cancel_exec).
    pub async fn exec(
        &self,
        name: &str,
        hold: &HoldArgs,
        body: &ExecBody,
    ) -> Result<reqwest::Response, ApiFailure> {
        self.send(
            self.req(reqwest::Method::POST, &self.device_url(name, "/exec"))
                .query(&hold.query())
                .json(body),
        )
        .await
    }

    /// Asks the gateway to cancel a running exec.
    pub async fn cancel_exec(&self, id: u64) -> Result<(), ApiFailure> {
        self.send(self.req(reqwest::Method::POST, &format!("/v1/execs/{id}/cancel")))
            .await
            .map(|_| ())
    }

    /// How much of a push of this content the device already has.
    pub async fn partial(
        &self,
        name: &str,
        hold: &HoldArgs,
        remote: &str,
        size: u64,
        sha256: &str,
        mode: u32,
    ) -> Result<u64, ApiFailure> {
        let mut q = hold.query();
        q.push(("size", size.to_string()));
        q.push(("sha256", sha256.to_string()));
        q.push(("mode", format!("{mode:o}")));
        let r: PartialReply = self
            .json(
                self.req(
                    reqwest::Method::POST,
                    &self.device_url(name, &format!("/partial/{}", device_path(remote))),
                )
                .query(&q),
            )
            .await?;
        Ok(r.have)
    }

    /// Uploads `body` (the file from `offset` on) to the device.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload(
        &self,
        name: &str,
        hold: &HoldArgs,
        remote: &str,
        size: u64,
        sha256: &str,
        offset: u64,
        mode: u32,
        body: reqwest::Body,
    ) -> Result<PushReply, ApiFailure> {
        let mut q = hold.query();
        q.push(("size", size.to_string()));
        q.push(("sha256", sha256.to_string()));
        q.push(("offset", offset.to_string()));
        q.push(("mode", format!("{mode:o}")));
        self.json(
            self.req(
                reqwest::Method::PUT,
                &self.device_url(name, &format!("/files/{}", device_path(remote))),
            )
            .query(&q)
            .header(reqwest::header::CONTENT_LENGTH, size - offset)
            .body(body),
        )
        .await
    }

    /// Downloads a device file from `offset`; the response body is the
    /// content and [`SIZE_HEADER`] and [`SHA256_HEADER`] describe the whole
    /// file.
    pub async fn download(
        &self,
        name: &str,
        hold: &HoldArgs,
        remote: &str,
        offset: u64,
    ) -> Result<reqwest::Response, ApiFailure> {
        let mut q = hold.query();
        q.push(("offset", offset.to_string()));
        self.send(
            self.req(
                reqwest::Method::GET,
                &self.device_url(name, &format!("/files/{}", device_path(remote))),
            )
            .query(&q),
        )
        .await
    }

    /// Facts about a path.
    pub async fn stat(
        &self,
        name: &str,
        hold: &HoldArgs,
        path: &str,
    ) -> Result<StatReply, ApiFailure> {
        self.json(
            self.req(
                reqwest::Method::GET,
                &self.device_url(name, &format!("/stat/{}", device_path(path))),
            )
            .query(&hold.query()),
        )
        .await
    }

    /// A directory listing.
    pub async fn list(
        &self,
        name: &str,
        hold: &HoldArgs,
        path: &str,
    ) -> Result<Vec<StatReply>, ApiFailure> {
        let url = if path.is_empty() {
            self.device_url(name, "/list")
        } else {
            self.device_url(name, &format!("/list/{}", device_path(path)))
        };
        self.json(self.req(reqwest::Method::GET, &url).query(&hold.query()))
            .await
    }

    /// A file's hash.
    pub async fn hash(
        &self,
        name: &str,
        hold: &HoldArgs,
        path: &str,
    ) -> Result<HashReply, ApiFailure> {
        self.json(
            self.req(
                reqwest::Method::GET,
                &self.device_url(name, &format!("/hash/{}", device_path(path))),
            )
            .query(&hold.query()),
        )
        .await
    }

    /// Removes a file or empty directory.
    pub async fn remove(&self, name: &str, hold: &HoldArgs, path: &str) -> Result<(), ApiFailure> {
        self.send(
            self.req(
                reqwest::Method::DELETE,
                &self.device_url(name, &format!("/files/{}", device_path(path))),
            )
            .query(&hold.query()),
        )
        .await
        .map(|_| ())
    }

    /// Restarts the device and waits until it is back; returns its status.
    pub async fn reset(
        &self,
        name: &str,
        hold: &HoldArgs,
    ) -> Result<serde_json::Value, ApiFailure> {
        self.json(
            self.req(reqwest::Method::POST, &self.device_url(name, "/reset"))
                .query(&hold.query()),
        )
        .await
    }

    /// The device's console and log stream.
    pub async fn console(&self, name: &str) -> Result<reqwest::Response, ApiFailure> {
        self.send(self.req(reqwest::Method::GET, &self.device_url(name, "/console")))
            .await
    }

    /// Takes a lease.
    pub async fn lease(&self, name: &str, body: &LeaseBody) -> Result<LeaseReply, ApiFailure> {
        self.json(
            self.req(reqwest::Method::POST, &self.device_url(name, "/leases"))
                .json(body),
        )
        .await
    }

    /// Renews a lease.
    pub async fn renew(&self, name: &str, id: u64) -> Result<LeaseReply, ApiFailure> {
        self.json(self.req(
            reqwest::Method::PUT,
            &self.device_url(name, &format!("/leases/{id}")),
        ))
        .await
    }

    /// Gives a lease back.
    pub async fn release(&self, name: &str, id: u64) -> Result<(), ApiFailure> {
        self.send(self.req(
            reqwest::Method::DELETE,
            &self.device_url(name, &format!("/leases/{id}")),
        ))
        .await
        .map(|_| ())
    }

    /// Runs a job and returns its result.
    pub async fn run_job(&self, body: &JobBody) -> Result<JobResult, ApiFailure> {
        self.json(self.req(reqwest::Method::POST, "/v1/jobs").json(body))
            .await
    }
}

/// An error and its causes, `outer: inner: innermost`: reqwest's own
/// message ("error sending request") says nothing of why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_keep_slashes_and_escape_the_rest() {
        assert_eq!(device_path("bin/self test"), "bin/self%20test");
        assert_eq!(device_path("/tmp/x"), "%2Ftmp/x");
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
