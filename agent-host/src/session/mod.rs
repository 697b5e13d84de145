//! The protocol session: serves one link for the [`Agent`].
//!
//! [`serve_link`] reads the link's events. Each handshake (`Connected`)
//! starts a *generation*: the requests of one gateway session. Every request
//! (exec, attach, put, get, stat, list, remove, hash) runs in its own task;
//! the follow-up messages that carry its id (`Cancel`, `Credit`, `Stdin`,
//! `StdinClose`, `Write`, `Commit`) are routed to that task. A generation
//! ends when the peer restarts (`PeerReset`), breaks the protocol, or the
//! link closes or is replaced; its tasks learn it through their
//! link state turning `Gone`: file transfers stop (a push keeps its data
//! for a resume), and commands go on, see `exec`.
//!
//! Decisions a gateway author needs to know:
//!
//! - Unknown message kinds get `Unsupported(kind)`; a known kind whose body
//!   does not decode gets `Error(INVALID_ARGUMENT)`; a message without even a
//!   request id is logged and dropped. Replies sent *to* the agent (`Ok`,
//!   `Pong`, …) are ignored: answering them could start a loop between two
//!   confused peers.
//! - A follow-up for an id with no running request is dropped, except
//!   `Commit`, which gets `Error(NO_SUCH_REQUEST)` because its sender waits
//!   for an answer.
//! - At most [`MAX_REQUESTS`] requests run at once per session (commands are
//!   further limited by the executor); more get `Error(BUSY)`.
//! - Data waiting in the agent for a request task (stdin, pushed file data)
//!   is bounded by [`ROUTE_BUDGET`] per session. Pushes cannot reach it (they
//!   are held to their credit), but stdin has no credit in the protocol: a
//!   command that does not read its stdin while the gateway keeps sending
//!   eventually makes the agent stop reading the link, which pauses the
//!   whole session until the command reads, ends or times out.
//! - `Reset` without `--reset-command` is the built-in restart
//!   ([`Agent::restart`]): the reply `Ok` is queued, every command is stopped,
//!   kept results are forgotten, the boot id changes, and the link restarts
//!   on the same transport with a new session id, so the gateway sees the
//!   peer reset and introduces itself again. With `--reset-command`, `Ok` is
//!   sent and the command is run with `sh -c` in its own process group (so
//!   stopping the agent does not stop it); the session goes on.

mod exec;
mod files;
mod outbox;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use corral_io::driver::{LinkEvent, LinkReceiver, LinkSender};
use corral_protocol::credit::ReceiveCredit;
use corral_protocol::link::SessionInfo;
use corral_protocol::message::{
    Body, DecodeError, DeviceInfo, Envelope, ErrorCode, LogLine, StrList,
};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::agent::{Agent, AgentState};

pub(crate) use exec::Attachment;
pub(crate) use outbox::{LinkHandle, LinkState, Outbox};

/// Requests that may run at once in one session.
pub const MAX_REQUESTS: usize = 256;

/// Bytes of follow-up data (stdin, file writes) that may wait for request
/// tasks in one session before the agent stops reading the link.
pub const ROUTE_BUDGET: usize = 16 * 1024 * 1024;

/// Every queued follow-up counts at least this much against the budget, so
/// a flood of tiny messages is bounded too.
const MIN_COST: usize = 64;

/// Why [`serve_link`] returned.
#[derive(Debug)]
pub enum LinkEnd {
    /// The transport ended (EOF) or failed; the driver has stopped.
    Closed(Option<std::io::Error>),
    /// The caller's stop signal fired (a new connection replaced this one, or
    /// the agent is shutting down).
    Stopped,
    /// The gateway asked for the built-in reset, which has been done: the
    /// caller starts a new link (with a new session id) on the same
    /// transport.
    Reset,
}

/// A follow-up message for a running request, owned.
#[derive(Debug)]
pub(crate) enum FollowUp {
    Cancel,
    Credit(u32),
    /// Stdin bytes; the permit holds their share of the session budget until
    /// they are written to the command.
    Stdin(Vec<u8>, OwnedSemaphorePermit),
    StdinClose,
    Write {
        offset: u64,
        data: Vec<u8>,
        permit: OwnedSemaphorePermit,
        /// False if the bytes arrived beyond the credit granted so far
        /// (counted on arrival, not when the task gets to them).
        within_credit: bool,
    },
    Commit,
}

/// What a request task may ask of the session loop.
#[derive(Debug)]
pub(crate) enum Control {
    /// Do the built-in reset.
    Reset,
}

/// What a request task gets to work with.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub agent: Arc<Agent>,
    /// The agent state when the session started (a reset ends the session).
    pub state: Arc<AgentState>,
    pub link: LinkHandle,
    pub control: mpsc::UnboundedSender<Control>,
}

/// Serves the link given by `sender` and `receiver` until it closes, `stop`
/// completes, or the gateway asks for a reset.
pub async fn serve_link<F>(
    agent: Arc<Agent>,
    sender: LinkSender,
    mut receiver: LinkReceiver,
    stop: F,
) -> LinkEnd
where
    F: Future<Output = ()>,
{
    tokio::pin!(stop);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let mut generation: Option<Generation> = None;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => {
                end(&mut generation, "the link was stopped");
                return LinkEnd::Stopped;
            }
            Some(control) = control_rx.recv() => match control {
                Control::Reset => {
                    end(&mut generation, "reset");
                    // The receiver is still held, so the link keeps
                    // delivering the `Ok` while commands are stopped.
                    agent.restart().await;
                    return LinkEnd::Reset;
                }
            },
            event = receiver.recv() => {
                let Some(event) = event else {
                    end(&mut generation, "the link closed");
                    return LinkEnd::Closed(None);
                };
                match event {
                    LinkEvent::Connected(info) => {
                        end(&mut generation, "a new session started");
                        tracing::info!(
                            peer_session = format_args!("{:08x}", info.peer_session),
                            "gateway session started"
                        );
                        generation = Some(Generation::start(
                            &agent,
                            sender.clone(),
                            &info,
                            control_tx.clone(),
                        ));
                    }
                    LinkEvent::PeerReset => end(&mut generation, "the gateway restarted its session"),
                    LinkEvent::ProtocolViolation => {
                        tracing::warn!("the gateway sent a message larger than agreed; the session restarts");
                        end(&mut generation, "protocol violation");
                    }
                    LinkEvent::Down => {
                        tracing::info!("the gateway is not answering; commands keep only output tails until it is back");
                        if let Some(g) = &generation {
                            g.set_state(LinkState::Down);
                        }
                    }
                    LinkEvent::Up => {
                        tracing::info!("the gateway answers again");
                        if let Some(g) = &generation {
                            g.set_state(LinkState::Up);
                        }
                    }
                    LinkEvent::Rejected(r) => tracing::warn!("link handshake refused: {r}"),
                    LinkEvent::Console(text) => {
                        tracing::debug!(bytes = text.len(), "ignoring non-protocol bytes from the line");
                    }
                    LinkEvent::Message(bytes) => match &mut generation {
                        Some(g) => g.dispatch(&bytes).await,
                        None => tracing::debug!("message outside a session; ignored"),
                    },
                    LinkEvent::Closed(err) => {
                        end(&mut generation, "the link closed");
                        return LinkEnd::Closed(err);
                    }
                }
            }
        }
    }
}

fn end(generation: &mut Option<Generation>, why: &str) {
    if let Some(g) = generation.take() {
        tracing::info!(why, "gateway session ended");
        g.end();
    }
}

/// Where a request's follow-ups go.
struct Route {
    tx: mpsc::UnboundedSender<FollowUp>,
    /// For a push: its receive credit, shared with the task, which grants
    /// more as it writes.
    credit: Option<SharedCredit>,
}

/// A push's receive credit: counted by the session loop as data arrives,
/// topped up by the push task as data reaches the disk.
pub(crate) type SharedCredit = Arc<std::sync::Mutex<ReceiveCredit>>;

/// One gateway session on the link.
struct Generation {
    ctx: Ctx,
    state_tx: watch::Sender<LinkState>,
    routes: HashMap<u32, Route>,
    budget: Arc<Semaphore>,
}

impl Generation {
    fn start(
        agent: &Arc<Agent>,
        sender: LinkSender,
        info: &SessionInfo,
        control: mpsc::UnboundedSender<Control>,
    ) -> Self {
        let (state_tx, state_rx) = watch::channel(LinkState::Up);
        let link = LinkHandle::new(sender, usize::from(info.max_message), state_rx);
        if let Some(logs) = agent.logs() {
            tokio::spawn(forward_logs(logs.subscribe(), link.outbox(0)));
        }
        Generation {
            ctx: Ctx {
                agent: Arc::clone(agent),
                state: agent.state(),
                link,
                control,
            },
            state_tx,
            routes: HashMap::new(),
            budget: Arc::new(Semaphore::new(ROUTE_BUDGET)),
        }
    }

    fn set_state(&self, state: LinkState) {
        self.state_tx.send_replace(state);
    }

    fn end(self) {
        self.state_tx.send_replace(LinkState::Gone);
        // Dropping the routes closes every task's follow-up channel.
    }

    async fn dispatch(&mut self, bytes: &[u8]) {
        let env = match Envelope::decode(bytes) {
            Ok(env) => env,
            Err(DecodeError::Malformed) => {
                tracing::warn!(
                    len = bytes.len(),
                    "ignoring a malformed message from the gateway"
                );
                return;
            }
            Err(DecodeError::UnknownKind { id, kind }) => {
                tracing::debug!(id, kind, "unsupported message kind");
                let _ = self.ctx.link.outbox(id).send(Body::Unsupported(kind)).await;
                return;
            }
            Err(DecodeError::BadBody { id, kind }) => {
                tracing::warn!(id, kind, "a message from the gateway has a malformed body");
                let _ = self
                    .ctx
                    .link
                    .outbox(id)
                    .error(
                        ErrorCode::INVALID_ARGUMENT,
                        &format!("the body of this message (kind {kind}) does not decode"),
                    )
                    .await;
                return;
            }
        };
        let id = env.id;
        match env.body {
            Body::Cancel => self.follow(id, FollowUp::Cancel).await,
            Body::Credit(n) => self.follow(id, FollowUp::Credit(n)).await,
            Body::StdinClose => self.follow(id, FollowUp::StdinClose).await,
            Body::Commit => self.follow(id, FollowUp::Commit).await,
            Body::Stdin(data) => {
                let Some(permit) = self.reserve(data.len()).await else {
                    return;
                };
                self.follow(id, FollowUp::Stdin(data.to_vec(), permit))
                    .await;
            }
            Body::Write(w) => {
                let within_credit = match self.routes.get(&id).and_then(|r| r.credit.as_ref()) {
                    Some(credit) => credit
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .received(w.data.len()),
                    None => true,
                };
                let Some(permit) = self.reserve(w.data.len()).await else {
                    return;
                };
                let up = FollowUp::Write {
                    offset: w.offset,
                    data: w.data.to_vec(),
                    permit,
                    within_credit,
                };
                self.follow(id, up).await;
            }
            Body::Hello(hello) => {
                tracing::info!(
                    host = hello.name,
                    software = hello.software,
                    "gateway introduced itself"
                );
                self.device_info(id).await;
            }
            Body::Ping(n) => {
                let _ = self.ctx.link.outbox(id).send(Body::Pong(n)).await;
            }
            Body::Exec(req) => {
                let req = exec::ExecArgs::from_wire(&req);
                if let Some(rx) = self.open_route(id).await {
                    let ctx = self.ctx.clone();
                    tokio::spawn(exec::run(ctx, id, req, rx));
                }
            }
            Body::Attach(token) => {
                if let Some(rx) = self.open_route(id).await {
                    exec::attach(&self.ctx, id, token, rx).await;
                }
            }
            Body::PutOpen(open) => {
                let args = files::PutArgs::from_wire(&open);
                let credit: SharedCredit =
                    Arc::new(std::sync::Mutex::new(ReceiveCredit::new(files::PUT_WINDOW)));
                if let Some(rx) = self.open_route_with(id, Some(Arc::clone(&credit))).await {
                    tokio::spawn(files::put(self.ctx.clone(), id, args, credit, rx));
                }
            }
            Body::Get(get) => {
                let args = files::GetArgs::from_wire(&get);
                if let Some(rx) = self.open_route(id).await {
                    tokio::spawn(files::get(self.ctx.clone(), id, args, rx));
                }
            }
            Body::Stat(path) | Body::List(path) | Body::Remove(path) | Body::Hash(path) => {
                let op = match env.body {
                    Body::Stat(_) => files::PathOp::Stat,
                    Body::List(_) => files::PathOp::List,
                    Body::Remove(_) => files::PathOp::Remove,
                    _ => files::PathOp::Hash,
                };
                let path = path.to_string();
                if let Some(rx) = self.open_route(id).await {
                    tokio::spawn(files::path_op(self.ctx.clone(), id, op, path, rx));
                }
            }
            Body::Reset => {
                let ctx = self.ctx.clone();
                tokio::spawn(reset(ctx, id));
            }
            // Replies and device-to-host messages are never answered.
            other => tracing::debug!(
                id,
                kind = other.kind(),
                "ignoring a reply-type message from the gateway"
            ),
        }
    }

    /// Takes `len` bytes of the session budget; waits (and so stops reading
    /// the link) while request tasks hold too much data.
    async fn reserve(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let cost = len.clamp(MIN_COST, ROUTE_BUDGET) as u32;
        Arc::clone(&self.budget).acquire_many_owned(cost).await.ok()
    }

    /// Routes a follow-up to its request.
    async fn follow(&mut self, id: u32, up: FollowUp) {
        let up = match self.routes.get(&id) {
            Some(route) => match route.tx.send(up) {
                Ok(()) => return,
                Err(mpsc::error::SendError(up)) => {
                    self.routes.remove(&id);
                    up
                }
            },
            None => up,
        };
        if matches!(up, FollowUp::Commit) {
            let _ = self
                .ctx
                .link
                .outbox(id)
                .error(
                    ErrorCode::NO_SUCH_REQUEST,
                    &format!("commit for request {id}, which is not an open push"),
                )
                .await;
        } else {
            tracing::debug!(
                id,
                ?up,
                "follow-up for a request that is not running; dropped"
            );
        }
    }

    /// Registers a new request id; replies an error and returns `None` if it
    /// cannot run.
    async fn open_route(&mut self, id: u32) -> Option<mpsc::UnboundedReceiver<FollowUp>> {
        self.open_route_with(id, None).await
    }

    async fn open_route_with(
        &mut self,
        id: u32,
        credit: Option<SharedCredit>,
    ) -> Option<mpsc::UnboundedReceiver<FollowUp>> {
        if self.routes.len() >= MAX_REQUESTS || self.routes.contains_key(&id) {
            self.routes.retain(|_, route| !route.tx.is_closed());
        }
        let refusal = if self.routes.contains_key(&id) {
            Some((
                ErrorCode::INVALID_ARGUMENT,
                format!("request id {id} is already in use by a running request"),
            ))
        } else if self.routes.len() >= MAX_REQUESTS {
            Some((
                ErrorCode::BUSY,
                format!("{MAX_REQUESTS} requests are already running in this session"),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            let _ = self.ctx.link.outbox(id).error(code, &message).await;
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.insert(id, Route { tx, credit });
        Some(rx)
    }

    async fn device_info(&self, id: u32) {
        let agent = &self.ctx.agent;
        let identity = &agent.options().identity;
        let info = DeviceInfo {
            name: &identity.name,
            board: &identity.board,
            serial: &identity.serial,
            firmware: &identity.firmware,
            boot_id: self.ctx.state.boot_id,
            limits: agent.limits(),
            commands: StrList::EMPTY,
        };
        let _ = self.ctx.link.outbox(id).send(Body::DeviceInfo(info)).await;
    }
}

/// Sends the agent's warnings to the gateway while the session lasts.
async fn forward_logs(
    mut rx: tokio::sync::broadcast::Receiver<crate::logfwd::LogRecord>,
    outbox: Outbox,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut state = outbox.watch();
    loop {
        let record = tokio::select! {
            r = rx.recv() => r,
            () = outbox::until(&mut state, |s| s == LinkState::Gone) => return,
        };
        match record {
            Ok(record) => {
                let line = LogLine {
                    level: record.level,
                    text: outbox::clip(&record.text, outbox.max_payload()),
                };
                if outbox.send(Body::Log(line)).await.is_err() {
                    return;
                }
            }
            // Lines skipped while the link was slow: nothing to do.
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Handles `Reset`; see the module documentation.
async fn reset(ctx: Ctx, id: u32) {
    let outbox = ctx.link.outbox(id);
    match &ctx.agent.options().reset_command {
        Some(command) => {
            tracing::warn!(command, "reset requested: running the reset command");
            let _ = outbox.send(Body::Ok).await;
            run_reset_command(command);
        }
        None => {
            tracing::warn!("reset requested: restarting the agent");
            let _ = outbox.send(Body::Ok).await;
            let _ = ctx.control.send(Control::Reset);
        }
    }
}

/// Starts the configured reset command in its own process group, outside the
/// executor, so that a command that restarts or stops the agent is not killed
/// by the agent's own shutdown. Its outcome goes to the agent's log.
fn run_reset_command(command: &str) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(false)
        .spawn();
    let command = command.to_string();
    let child = match child {
        Ok(child) => child,
        Err(err) => {
            tracing::warn!(command, %err, "cannot start the reset command");
            return;
        }
    };
    tokio::spawn(async move {
        match child.wait_with_output().await {
            Ok(out) if out.status.success() => tracing::info!(command, "reset command finished"),
            Ok(out) => tracing::warn!(
                command,
                status = %out.status,
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "reset command failed"
            ),
            Err(err) => tracing::warn!(command, %err, "reset command failed"),
        }
    });
}
