//! The gateway's HTTP API (axum), documented in `gateway/openapi.yaml`.
//!
//! Every route that drives a device holds the device's lease for the
//! duration of the request: the one named by `?lease=ID` (renewed while the
//! request runs), or a short one taken for the request, which waits behind
//! other holders unless `?no_wait=true`. So a single `corral exec` queues
//! behind a job on the same board instead of colliding with it.
//!
//! Nothing here buffers a whole file: an upload is streamed from the request
//! body to the device under the device's flow control, and a download from
//! the device to the response body.

use super::wire::*;
use crate::config::job::Job;
use crate::config::Label;
use crate::device::{Demand, Device, DeviceError, DeviceState};
use crate::gateway::{Gateway, LookupError, RunError, Target};
use crate::lease::{LeaseError, LeaseGuard, LeaseInfo};
use crate::transfer;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use corral_io::client::{ClientError, DeviceClient, ExecEvent, ExecOptions, TransferOptions};
use corral_protocol::message::ExitReason;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, ReadBuf};
use tokio::sync::{mpsc, Notify};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How long a request waits for a device that is not connected right now
/// (reconnecting after a reset, a latent device being switched on).
const CONNECT_WAIT: Duration = Duration::from_secs(30);
/// How long a request waits for a leased device unless told otherwise.
const LEASE_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Timeout of the quick file requests (stat, list, remove).
const QUICK: Duration = Duration::from_secs(30);
/// Timeout of a hash: the device reads the whole file.
const HASH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long past its own timeout (or after a cancel) a command's exit
/// report may take before the link is called dead.
const EXIT_GRACE: Duration = Duration::from_secs(15);
/// Largest JSON request body. Exec bodies carry stdin as base64.
const JSON_LIMIT: usize = MAX_STDIN * 4 / 3 + (1 << 20);
/// Buffer between a device's pull and the HTTP response.
const PULL_BUFFER: usize = 256 * 1024;

/// An error response: a status and `{ "error": ..., "kind": ... }`.
#[derive(Debug)]
pub struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(status: StatusCode, kind: &str, msg: impl Into<String>) -> Self {
        ApiError(
            status,
            ErrorBody {
                error: msg.into(),
                kind: kind.into(),
            },
        )
    }

    fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Unknown { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_device", e.to_string())
            }
            LookupError::Ambiguous { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "ambiguous_device", e.to_string())
            }
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::Busy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "lease_busy", e.to_string())
            }
            LeaseError::NotHeld { .. } => {
                ApiError::new(StatusCode::CONFLICT, "lease_not_held", e.to_string())
            }
        }
    }
}

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "device_unavailable",
            e.to_string(),
        )
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        if e.is_infrastructure() {
            ApiError::new(StatusCode::BAD_GATEWAY, "infrastructure", e.to_string())
        } else {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "device", e.to_string())
        }
    }
}

/// `Json` whose rejection is an [`ApiError`] (JSON, `bad_request`), like
/// every other error of the API.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::new(e.status(), "bad_request", e.body_text())),
        }
    }
}

/// `Query` whose rejection is an [`ApiError`].
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `Path` whose rejection is an [`ApiError`].
struct At<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for At<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(At(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

/// What the handlers share.
struct App {
    gateway: Gateway,
    token: Option<String>,
    /// Running execs, for the cancel route.
    execs: Mutex<HashMap<u64, Arc<Notify>>>,
    next_exec: AtomicU64,
}

type AppState = Arc<App>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The API's routes for `gateway`. With a `token`, every request must carry
/// `Authorization: Bearer <token>`.
pub fn router(gateway: Gateway, token: Option<String>) -> Router {
    let app = Arc::new(App {
        gateway,
        token,
        execs: Mutex::new(HashMap::new()),
        next_exec: AtomicU64::new(1),
    });
    // Uploads are streams of any length; everything else is small JSON.
    let files = put(upload)
        .layer(DefaultBodyLimit::disable())
        .get(download)
        .delete(remove);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.yaml", get(openapi))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/{name}", get(device))
        .route("/v1/devices/{name}/exec", post(exec))
        .route("/v1/execs/{id}/cancel", post(cancel_exec))
        .route("/v1/devices/{name}/files/{*path}", files)
        .route("/v1/devices/{name}/partial/{*path}", post(partial))
        .route("/v1/devices/{name}/stat/{*path}", get(stat))
        .route("/v1/devices/{name}/list", get(list_root))
        .route("/v1/devices/{name}/list/{*path}", get(list))
        .route("/v1/devices/{name}/hash/{*path}", get(hash))
        .route("/v1/devices/{name}/reset", post(reset))
        .route("/v1/devices/{name}/console", get(console))
        .route("/v1/devices/{name}/leases", post(lease_take))
        .route(
            "/v1/devices/{name}/leases/{id}",
            put(lease_renew).delete(lease_release),
        )
        .route("/v1/jobs", post(run_job))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "bad_request",
                "no such route; the routes are in /v1/openapi.yaml",
            )
        })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

/// Serves the API on `listener` until `shutdown` resolves, then stops
/// accepting and lets running requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(gateway, token);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Compares without an early exit, so the time taken does not tell an
/// attacker how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.trim().as_bytes(), token.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this gateway needs its API token: send `Authorization: Bearer <token>` (the CLI reads it from --token-file or CORRAL_TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.gateway.metrics(),
    )
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../openapi.yaml"),
    )
}

async fn devices(State(app): State<AppState>) -> impl IntoResponse {
    Json(
        app.gateway
            .devices()
            .iter()
            .map(|d| d.status())
            .collect::<Vec<_>>(),
    )
}

async fn device(
    State(app): State<AppState>,
    At(name): At<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(app.gateway.device(&name)?.status()))
}

/// How a request holds the device: query parameters of every device route.
#[derive(Debug, Deserialize, Default)]
struct Hold {
    /// Operate under this lease (taken with `POST …/leases`).
    lease: Option<u64>,
    /// Fail at once (409) if someone else holds the device.
    #[serde(default)]
    no_wait: bool,
    /// Who is asking, shown to others while the request holds the device.
    holder: Option<String>,
}

/// A device held for one request: its lease (taken for the request, or the
/// caller's, renewed meanwhile), and powered on if it is latent.
struct Held {
    device: Device,
    _lease: HeldLease,
    _demand: Demand,
}

enum HeldLease {
    /// Released when dropped.
    Own(#[allow(dead_code)] LeaseGuard),
    Callers(tokio::task::JoinHandle<()>),
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let HeldLease::Callers(renewer) = self {
            renewer.abort();
        }
    }
}

impl Held {
    async fn client(&self) -> Result<DeviceClient, ApiError> {
        Ok(self.device.client(CONNECT_WAIT).await?)
    }
}

/// A quarantined device takes no work: `device_unavailable` (503) with the
/// reason.
fn refuse_quarantined(device: &Device) -> Result<(), ApiError> {
    let s = device.status();
    if s.state == DeviceState::Quarantined {
        return Err(DeviceError::Unavailable {
            name: s.name,
            state: s.state,
            reason: s.reason,
        }
        .into());
    }
    Ok(())
}

async fn hold(app: &App, name: &str, h: &Hold) -> Result<Held, ApiError> {
    let device = app.gateway.device(name)?;
    refuse_quarantined(&device)?;
    let lease = match h.lease {
        Some(id) => {
            let slot = device.lease();
            let info = slot.renew(id, None)?;
            // A long request (an hour-long exec) must not lose the lease
            // its caller holds: the request counts as a sign of life.
            let every = Duration::from_millis(info.ttl_ms / 3).max(Duration::from_millis(100));
            HeldLease::Callers(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if slot.renew(id, None).is_err() {
                        return;
                    }
                }
            }))
        }
        None => {
            let holder = h.holder.clone().unwrap_or_else(|| "http client".into());
            let wait = if h.no_wait { None } else { Some(LEASE_WAIT) };
            HeldLease::Own(LeaseGuard::acquire(device.lease(), &holder, wait).await?)
        }
    };
    // Only the holder switches a latent device on: a request waiting for
    // the lease must not keep it powered.
    let demand = device.demand();
    Ok(Held {
        device,
        _lease: lease,
        _demand: demand,
    })
}

fn reason_name(r: ExitReason) -> &'static str {
    match r {
        ExitReason::Exited => "exited",
        ExitReason::Signaled => "signaled",
        ExitReason::TimedOut => "timed_out",
        ExitReason::Cancelled => "cancelled",
        ExitReason::FailedToStart => "failed_to_start",
    }
}

fn exit_line(info: &corral_io::client::ExitInfo) -> ExecLine {
    ExecLine::Exit {
        reason: reason_name(info.reason).into(),
        code: info.code,
        signal: info.signal,
        status: info.shell_status(),
        duration_ms: info.duration.as_millis() as u64,
        output_dropped: info.output_dropped,
        detail: info.detail.clone(),
    }
}

fn ndjson(line: &ExecLine) -> Bytes {
    let mut v = serde_json::to_vec(line).unwrap_or_default();
    v.push(b'\n');
    v.into()
}

/// Removes a finished exec from the cancel registry.
struct Registered {
    app: AppState,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.app.execs).remove(&self.id);
    }
}

async fn exec(
    State(app): State<AppState>,
    At(name): At<String>,
    Params(h): Params<Hold>,
    JsonBody(body): JsonBody<ExecBody>,
) -> Result<Response, ApiError> {
    if body.argv.is_empty() {
        return Err(ApiError::bad_request(
            "argv is empty: give the program to run and its arguments",
        ));
    }
    let stdin = match &body.stdin_b64 {
        Some(s) => {
            let bytes = B64
                .decode(s)
                .map_err(|e| ApiError::bad_request(format!("stdin_b64 is not base64: {e}")))?;
            if bytes.len() > MAX_STDIN {
                return Err(ApiError::bad_request(format!(
                    "stdin is {} bytes; at most {MAX_STDIN} go with a command (push a file for more)",
                    bytes.len()
                )));
            }
            Some(bytes)
        }
        None => None,
    };
    let held = hold(&app, &name, &h).await?;
    let client = held.client().await?;
    let timeout = body.timeout_ms.map(Duration::from_millis);
    let opts = ExecOptions {
        argv: body.argv,
        env: body.env,
        cwd: body.cwd,
        timeout,
        stdin: stdin.is_some(),
        token: rand::random::<u64>() | 1,
    };
    let mut handle = client.exec(&opts).await?;
    if let Some(bytes) = stdin {
        handle.write_stdin(&bytes).await?;
        handle.close_stdin().await?;
    }
    let id = app.next_exec.fetch_add(1, Ordering::Relaxed);
    let cancel = Arc::new(Notify::new());
    lock(&app.execs).insert(id, cancel.clone());
    let registered = Registered {
        app: app.clone(),
        id,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    // The device enforces the timeout; the gateway only gives up on a link
    // that stays silent well past it.
    let mut silence = timeout.map_or(Duration::from_secs(7 * 24 * 3600), |t| t + EXIT_GRACE);
    tokio::spawn(async move {
        let held = held;
        let _registered = registered;
        let mut cancelled = false;
        loop {
            let step = tokio::select! {
                ev = handle.next(silence) => Step::Event(ev),
                // The caller went away (Ctrl-C, a dead CI runner) or asked
                // to cancel: kill the command, and still wait for its exit
                // so the device is clean before the lease goes. (Winning
                // this branch drops a pending `next`, which can lose an
                // output chunk it was granting credit for; after a cancel
                // that output is not wanted. A cloneable cancel handle on
                // `ExecHandle` would avoid even that.)
                _ = tx.closed(), if !cancelled => Step::Cancel,
                _ = cancel.notified(), if !cancelled => Step::Cancel,
            };
            let line = match step {
                Step::Event(None) => return,
                Step::Cancel => {
                    cancelled = true;
                    silence = EXIT_GRACE * 2;
                    tracing::info!(exec = id, "cancelling a command");
                    if handle.cancel().await.is_err() {
                        return;
                    }
                    continue;
                }
                Step::Event(Some(Ok(ExecEvent::Started(pid)))) => ExecLine::Started { pid },
                Step::Event(Some(Ok(ExecEvent::Stdout(d)))) => ExecLine::Stdout {
                    data: B64.encode(d),
                },
                Step::Event(Some(Ok(ExecEvent::Stderr(d)))) => ExecLine::Stderr {
                    data: B64.encode(d),
                },
                Step::Event(Some(Ok(ExecEvent::Exit(info)))) => exit_line(&info),
                Step::Event(Some(Err(e))) => {
                    if let ClientError::Timeout(_) = e {
                        let what = if cancelled {
                            "a cancelled command's exit report never came"
                        } else {
                            "a command's exit report never came"
                        };
                        held.device.report_unanswered(what);
                    }
                    ExecLine::Error {
                        infrastructure: e.is_infrastructure(),
                        message: e.to_string(),
                    }
                }
            };
            let last = matches!(line, ExecLine::Exit { .. } | ExecLine::Error { .. });
            // A caller that left gets nothing more; the loop still drains
            // the command to its exit.
            let _ = tx.send(Ok(ndjson(&line))).await;
            if last {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(EXEC_ID_HEADER, HeaderValue::from(id));
    Ok(resp)
}

/// What the exec loop does next.
enum Step {
    /// An event of the command (or the end of its events).
    Event(Option<Result<ExecEvent, ClientError>>),
    /// Cancel the command.
    Cancel,
}

async fn cancel_exec(State(app): State<AppState>, At(id): At<u64>) -> Result<StatusCode, ApiError> {
    let n = lock(&app.execs).get(&id).cloned();
    match n {
        Some(n) => {
            // `notify_one` keeps the permit if the exec is not waiting
            // right now, so the cancel is never lost.
            n.notify_one();
            Ok(StatusCode::ACCEPTED)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "bad_request",
            format!("no running exec {id} (it ended, or never ran on this gateway)"),
        )),
    }
}

fn parse_sha256(s: &str) -> Result<[u8; 32], ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "sha256 {s:?} is not 64 hex digits (the SHA-256 of the whole file)"
        ))
    };
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn parse_mode(m: Option<&str>) -> Result<u32, ApiError> {
    match m {
        None => Ok(0o644),
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|v| *v <= 0o7777)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "mode {m:?} is not octal permission bits (e.g. 755)"
                ))
            }),
    }
}

/// What the device holds of a file: the parameters of a push.
#[derive(Debug, Deserialize)]
struct PushParams {
    /// The whole file's size.
    size: u64,
    /// The whole file's SHA-256, hex.
    sha256: String,
    /// Where this upload's body starts in the file.
    #[serde(default)]
    offset: u64,
    /// Permission bits, octal (`755`).
    mode: Option<String>,
}

/// A push source that only tells where the device wants to start: it
/// records the seek the push makes after `PutOpen` and then fails, so the
/// push stops and the device keeps what it has.
struct Probe(Arc<Mutex<Option<u64>>>);

impl AsyncRead for Probe {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::other("probe only")))
    }
}

impl AsyncSeek for Probe {
    fn start_seek(self: Pin<&mut Self>, pos: io::SeekFrom) -> io::Result<()> {
        match pos {
            io::SeekFrom::Start(p) => {
                *lock(&self.0) = Some(p);
                Ok(())
            }
            _ => Err(io::Error::other("probe only")),
        }
    }
    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        // Asked once before the seek starts (is another seek pending?) and
        // once after: fail only then, with the position recorded.
        match *lock(&self.0) {
            None => Poll::Ready(Ok(0)),
            Some(_) => Poll::Ready(Err(io::Error::other("probe only"))),
        }
    }
}

async fn partial(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
    Params(p): Params<PushParams>,
) -> Result<Json<PartialReply>, ApiError> {
    let sha = parse_sha256(&p.sha256)?;
    let mode = parse_mode(p.mode.as_deref())?;
    let held = hold(&app, &name, &h).await?;
    let client = held.client().await?;
    let seen = Arc::new(Mutex::new(None));
    let mut probe = Probe(seen.clone());
    let r = client
        .push(
            &mut probe,
            p.size,
            sha,
            &path,
            mode,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await;
    let have = *lock(&seen);
    match (have, r) {
        (Some(have), _) => Ok(Json(PartialReply { have })),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(_)) => Err(internal(
            "the device finished a push without asking for data",
        )),
    }
}

/// The upload body as a push source. The push seeks once, to the offset the
/// device asks for; the body starts at `offset`, so any other position is a
/// resume mismatch (the device lost or gained bytes since the probe).
struct Upload<R> {
    body: R,
    pos: u64,
    mismatch: Arc<Mutex<Option<u64>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Upload<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.body).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.pos += (buf.filled().len() - before) as u64;
        }
        r
    }
}

impl<R: Unpin> AsyncSeek for Upload<R> {
    fn start_seek(self: Pin<&mut Self>, pos: io::SeekFrom) -> io::Result<()> {
        match pos {
            io::SeekFrom::Start(p) if p == self.pos => Ok(()),
            io::SeekFrom::Start(p) => {
                *lock(&self.mismatch) = Some(p);
                Err(io::Error::other(format!(
                    "the device has {p} bytes of this file, the upload starts at {}",
                    self.pos
                )))
            }
            _ => Err(io::Error::other("an upload can only be read forwards")),
        }
    }
    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

async fn upload(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
    Params(p): Params<PushParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PushReply>, ApiError> {
    let stream = body.into_data_stream().map(|r| r.map_err(io::Error::other));
    let mut body = tokio_util::io::StreamReader::new(stream);
    let r = push_body(&app, &name, &path, &h, &p, &headers, &mut body).await;
    if r.is_err() {
        // Read what the client is still sending before answering. A server
        // that answers and closes with unread bytes in its socket makes the
        // kernel reset the connection, and the client would only see
        // "connection reset" instead of this error.
        let rest = p.size.saturating_sub(p.offset);
        let mut sink = tokio::io::sink();
        let _ = tokio::time::timeout(
            UPLOAD_DRAIN,
            tokio::io::copy(&mut (&mut body).take(rest), &mut sink),
        )
        .await;
    }
    r.map(Json)
}

/// How long a failed upload keeps reading the rest of its body.
const UPLOAD_DRAIN: Duration = Duration::from_secs(10);

async fn push_body(
    app: &AppState,
    name: &str,
    path: &str,
    h: &Hold,
    p: &PushParams,
    headers: &HeaderMap,
    body: &mut (impl AsyncRead + Unpin),
) -> Result<PushReply, ApiError> {
    let sha = parse_sha256(&p.sha256)?;
    let mode = parse_mode(p.mode.as_deref())?;
    if p.offset > p.size {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bad_offset",
            format!("offset {} is past the file's size {}", p.offset, p.size),
        ));
    }
    let expected = p.size - p.offset;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len != expected {
            return Err(ApiError::bad_request(format!(
                "the body has {len} bytes but size - offset is {expected}"
            )));
        }
    }
    let held = hold(app, name, h).await?;
    let client = held.client().await?;
    let mismatch = Arc::new(Mutex::new(None));
    let mut src = Upload {
        body,
        pos: p.offset,
        mismatch: mismatch.clone(),
    };
    let r = client
        .push(
            &mut src,
            p.size,
            sha,
            path,
            mode,
            &TransferOptions::default(),
            &mut |_| {},
        )
        .await;
    if let Some(have) = *lock(&mismatch) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "resume_mismatch",
            format!(
                "the device has {have} bytes of this file, not {}: ask again (POST …/partial/{path}) and upload from there",
                p.offset
            ),
        ));
    }
    let out = r?;
    // The push read exactly size - offset bytes; anything after them means
    // the caller's size was wrong.
    let mut extra = [0u8; 1];
    if matches!(src.body.read(&mut extra).await, Ok(n) if n > 0) {
        return Err(ApiError::bad_request(format!(
            "the body is longer than size - offset ({expected} bytes); the file was written with the first {expected}"
        )));
    }
    Ok(PushReply {
        resumed_from: out.resumed_from,
        sent: out.sent,
        size: p.size,
    })
}

#[derive(Debug, Deserialize)]
struct PullParams {
    /// Start at this byte (what the caller already has).
    #[serde(default)]
    offset: u64,
}

async fn download(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
    Params(p): Params<PullParams>,
) -> Result<Response, ApiError> {
    let held = hold(&app, &name, &h).await?;
    let client = held.client().await?;
    // The hash goes in the headers, before the data: a client can then
    // check what it assembled (its partial file and this body) on its own.
    let (size, sha) = client.hash(&path, HASH_TIMEOUT).await?;
    if p.offset > size {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bad_offset",
            format!(
                "offset {} is past the end of {path} ({size} bytes): the local partial copy is of another file",
                p.offset
            ),
        ));
    }
    let (mut writer, reader) = tokio::io::duplex(PULL_BUFFER);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let offset = p.offset;
    let remote = path.clone();
    tokio::spawn(async move {
        let _held = held;
        let r = client
            .pull(
                &remote,
                offset,
                &mut writer,
                &TransferOptions::default(),
                &mut |_| {},
            )
            .await;
        let verdict = match r {
            Ok((s, h)) if s == size && h == sha => Ok(()),
            Ok(_) => Err(format!("{remote} changed on the device while it was read")),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &verdict {
            tracing::warn!(file = %remote, error = %e, "download failed");
        }
        let _ = done_tx.send(verdict);
    });
    // After the data, the pull's verdict: an error breaks the response, so
    // the client never takes a short or changed file for a whole one.
    let tail = futures_util::stream::once(async move {
        match done_rx.await {
            Ok(Ok(())) => None,
            Ok(Err(m)) => Some(Err(io::Error::other(m))),
            Err(_) => Some(Err(io::Error::other("the download stopped"))),
        }
    })
    .filter_map(|x| async move { x });
    let stream = tokio_util::io::ReaderStream::new(reader).chain(tail);
    let mut resp = Body::from_stream(stream).into_response();
    let hd = resp.headers_mut();
    hd.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    hd.insert(header::CONTENT_LENGTH, HeaderValue::from(size - offset));
    hd.insert(SIZE_HEADER, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&transfer::hex(&sha)) {
        hd.insert(SHA256_HEADER, v);
    }
    Ok(resp)
}

fn stat_reply(name: String, s: &corral_protocol::message::FileStat) -> StatReply {
    StatReply {
        name,
        kind: corral_io::client::kind_name(s.kind).into(),
        size: s.size,
        mode: s.mode,
        mtime: s.mtime,
    }
}

async fn remove(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
) -> Result<StatusCode, ApiError> {
    let held = hold(&app, &name, &h).await?;
    held.client().await?.remove(&path, QUICK).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stat(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
) -> Result<Json<StatReply>, ApiError> {
    let held = hold(&app, &name, &h).await?;
    let s = held.client().await?.stat(&path, QUICK).await?;
    Ok(Json(stat_reply(String::new(), &s)))
}

async fn list_root(
    state: State<AppState>,
    At(name): At<String>,
    q: Params<Hold>,
) -> Result<Json<Vec<StatReply>>, ApiError> {
    list(state, At((name, String::new())), q).await
}

async fn list(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
) -> Result<Json<Vec<StatReply>>, ApiError> {
    let held = hold(&app, &name, &h).await?;
    let entries = held.client().await?.list(&path, QUICK).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|(n, s)| stat_reply(n, &s))
            .collect(),
    ))
}

async fn hash(
    State(app): State<AppState>,
    At((name, path)): At<(String, String)>,
    Params(h): Params<Hold>,
) -> Result<Json<HashReply>, ApiError> {
    let held = hold(&app, &name, &h).await?;
    let (size, sha) = held.client().await?.hash(&path, HASH_TIMEOUT).await?;
    Ok(Json(HashReply {
        size,
        sha256: transfer::hex(&sha),
    }))
}

#[derive(Debug, Deserialize)]
struct ResetParams {
    /// How long to wait for the device to come back, milliseconds.
    wait_ms: Option<u64>,
}

async fn reset(
    State(app): State<AppState>,
    At(name): At<String>,
    Params(h): Params<Hold>,
    Params(p): Params<ResetParams>,
) -> Result<Response, ApiError> {
    let held = hold(&app, &name, &h).await?;
    let client = held.client().await?;
    let before = held.device.status().identity.map(|i| i.boot_id);
    let mut watch = held.device.watch();
    client.reset(QUICK).await?;
    drop(client);
    let wait = Duration::from_millis(p.wait_ms.unwrap_or(60_000));
    // Back means connected again with a new boot id.
    let back = tokio::time::timeout(wait, async {
        loop {
            {
                let s = watch.borrow_and_update();
                let now = s.identity.as_ref().map(|i| i.boot_id.clone());
                if matches!(
                    s.state,
                    DeviceState::Idle | DeviceState::Busy | DeviceState::Quarantined
                ) && now.is_some()
                    && now != before
                {
                    return true;
                }
            }
            if watch.changed().await.is_err() {
                return false;
            }
        }
    })
    .await;
    match back {
        Ok(true) => Ok(Json(held.device.status()).into_response()),
        _ => {
            let s = held.device.status();
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "infrastructure",
                format!(
                    "device {} did not come back within {} after the reset (it is {}: {})",
                    s.name,
                    crate::report::human_duration(wait),
                    s.state,
                    s.reason
                ),
            ))
        }
    }
}

async fn console(State(app): State<AppState>, At(name): At<String>) -> Result<Response, ApiError> {
    let device = app.gateway.device(&name)?;
    let mut text = device.console();
    // Agent log messages come through the session of the moment, which
    // changes when the device reconnects.
    let mut sessions = device.shared.client.subscribe();
    let (tx, out) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let mut logs = sessions.borrow_and_update().as_ref().map(|c| c.logs());
        loop {
            let chunk: Bytes = tokio::select! {
                r = text.recv() => match r {
                    Ok(t) => t.into(),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        format!("\n[corral: {n} console chunks dropped: the reader was too slow]\n").into()
                    }
                    Err(_) => return,
                },
                l = async {
                    match logs.as_mut() {
                        Some(l) => l.recv().await,
                        None => std::future::pending().await,
                    }
                } => match l {
                    Ok(line) => format!("[log] {}\n", line.trim_end()).into(),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        format!("[corral: {n} log lines dropped]\n").into()
                    }
                    Err(_) => {
                        logs = None;
                        continue;
                    }
                },
                changed = sessions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    logs = sessions.borrow_and_update().as_ref().map(|c| c.logs());
                    continue;
                }
                _ = tx.closed() => return,
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn lease_reply(l: LeaseInfo) -> LeaseReply {
    LeaseReply {
        id: l.id,
        holder: l.holder,
        expires_in_ms: l.expires_in_ms,
        ttl_ms: l.ttl_ms,
    }
}

async fn lease_take(
    State(app): State<AppState>,
    At(name): At<String>,
    JsonBody(b): JsonBody<LeaseBody>,
) -> Result<Response, ApiError> {
    if b.holder.trim().is_empty() {
        return Err(ApiError::bad_request(
            "holder is empty: say who takes the lease",
        ));
    }
    let device = app.gateway.device(&name)?;
    refuse_quarantined(&device)?;
    let wait = (b.wait_ms > 0).then(|| Duration::from_millis(b.wait_ms));
    let ttl = Duration::from_millis(b.ttl_ms.max(1000));
    let lease = device.lease().acquire(&b.holder, ttl, wait).await?;
    Ok((StatusCode::CREATED, Json(lease_reply(lease))).into_response())
}

#[derive(Debug, Deserialize)]
struct RenewParams {
    /// A new time-to-live, milliseconds.
    ttl_ms: Option<u64>,
}

async fn lease_renew(
    State(app): State<AppState>,
    At((name, id)): At<(String, u64)>,
    Params(q): Params<RenewParams>,
) -> Result<Json<LeaseReply>, ApiError> {
    let device = app.gateway.device(&name)?;
    let ttl = q.ttl_ms.map(|t| Duration::from_millis(t.max(1000)));
    Ok(Json(lease_reply(device.lease().renew(id, ttl)?)))
}

async fn lease_release(
    State(app): State<AppState>,
    At((name, id)): At<(String, u64)>,
) -> Result<StatusCode, ApiError> {
    app.gateway.device(&name)?.lease().release(id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn run_job(
    State(app): State<AppState>,
    JsonBody(b): JsonBody<JobBody>,
) -> Result<Response, ApiError> {
    let job = Job::parse(&b.toml, std::path::Path::new(&b.origin))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let target = match (&b.device, b.labels.is_empty()) {
        (Some(d), true) => Target::Device(d.clone()),
        (None, false) => {
            let labels: Result<Vec<Label>, _> =
                b.labels.iter().map(|l| l.parse::<Label>()).collect();
            Target::Labels(labels.map_err(|e| ApiError::bad_request(format!("label: {e}")))?)
        }
        (None, true) if !job.labels.is_empty() => Target::Labels(job.labels.clone()),
        (Some(_), false) => return Err(ApiError::bad_request("give a device or labels, not both")),
        (None, true) => {
            return Err(ApiError::bad_request(
                "the job names no labels: say where to run it (--device NAME or --label KEY=VALUE)",
            ))
        }
    };
    let wait = (b.wait_ms > 0).then(|| Duration::from_millis(b.wait_ms));
    match app.gateway.run_job(&job, &target, &b.holder, wait).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(RunError::Lookup(e)) => Err(e.into()),
        Err(RunError::Lease(e)) => Err(e.into()),
        Err(e @ RunError::NoMatch(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_device",
            e.to_string(),
        )),
        Err(e @ RunError::AllBusy(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "lease_busy",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "device_unavailable",
            e.to_string(),
        )),
    }
}
