//! `canaryd sim`: an OpenAI-compatible provider simulator.
//!
//! No real provider is reachable where canaryd is built and tested, and
//! operators need to rehearse incidents, so every test, the demo and every
//! benchmark talks to this real HTTP server instead of an in-process fake.
//! What it answers is a deterministic function of the scenario, the
//! request, the seed and the phase:
//!
//! - The **wording** of an answer hashes the request content (model and
//!   messages), the seed and the phase, so a repeated prompt gets the same
//!   text within a phase.
//! - **Random events** (faults, refusals, dropped facts, truncation,
//!   latency, judge garbage) are drawn from a generator seeded with the
//!   seed, the request content and its **occurrence index**: how many times
//!   this exact request was seen before. Canary suites repeat the same
//!   prompts, so over many repeats the rates match the scenario, and a fresh
//!   process replays the same sequence whatever other requests interleave.
//!
//! Code map: `scenario` and `layers` (file format, phases, profiles),
//! `prompt` (question and context), `behave` and `filler` (answers),
//! `judge` (judge scores), `embed` (embeddings), `faults` (errors and
//! injected faults), `chat` and `api` (HTTP handlers), `stats` (counters).

mod api;
pub mod behave;
mod chat;
pub mod embed;
pub mod faults;
mod filler;
pub mod judge;
mod layers;
pub mod logprobs;
pub mod prompt;
pub mod reword;
mod rng;
pub mod scenario;
pub mod stats;
pub mod text;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use scenario::{Profile, Scenario};

/// What can go wrong starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Scenario(crate::diag::Diagnostic),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of one running simulator.
#[derive(Debug)]
pub struct SimState {
    pub scenario: Scenario,
    started: Instant,
    /// Chat completion requests received, for `after_requests` triggers.
    chat_requests: AtomicU64,
    /// Phase chosen by hand, or -1 when the triggers decide.
    manual_phase: AtomicI64,
    /// Highest phase the triggers have reached (phases never go back by
    /// themselves, even if a clock would say otherwise).
    auto_phase: AtomicU64,
    pub occurrences: stats::Occurrences,
    pub stats: stats::Stats,
    ids: AtomicU64,
    shutdown: CancellationToken,
}

impl SimState {
    pub fn new(scenario: Scenario, shutdown: CancellationToken) -> SimState {
        SimState {
            scenario,
            started: Instant::now(),
            chat_requests: AtomicU64::new(0),
            manual_phase: AtomicI64::new(-1),
            auto_phase: AtomicU64::new(0),
            occurrences: stats::Occurrences::default(),
            stats: stats::Stats::default(),
            ids: AtomicU64::new(0),
            shutdown,
        }
    }

    /// Counts a chat request and returns the phase it is served in: with
    /// `after_requests: 100`, requests 1–100 are served in the phase before
    /// and request 101 in this one.
    fn count_chat_request(&self) -> usize {
        let before = self.chat_requests.fetch_add(1, Ordering::Relaxed);
        self.phase_after(before)
    }

    /// The phase the next request will be served in.
    pub fn current_phase(&self) -> usize {
        self.phase_after(self.chat_requests.load(Ordering::Relaxed))
    }

    fn phase_after(&self, requests: u64) -> usize {
        let manual = self.manual_phase.load(Ordering::Relaxed);
        if manual >= 0 {
            return manual as usize;
        }
        if self.scenario.phases.len() == 1 {
            return 0;
        }
        let elapsed = if self.scenario.has_timed_phases() {
            self.started.elapsed().as_secs_f64()
        } else {
            0.0
        };
        let auto = self.scenario.auto_phase(requests, elapsed) as u64;
        let prev = self.auto_phase.fetch_max(auto, Ordering::Relaxed);
        prev.max(auto) as usize
    }

    /// Pins a phase (`Some`) or hands control back to the triggers (`None`).
    pub fn set_phase(&self, phase: Option<usize>) {
        let v = phase.map(|p| p.min(self.scenario.phases.len() - 1) as i64);
        self.manual_phase.store(v.unwrap_or(-1), Ordering::Relaxed);
    }

    pub fn phase_is_manual(&self) -> bool {
        self.manual_phase.load(Ordering::Relaxed) >= 0
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves the simulator on `listener` until `shutdown` is cancelled, then
/// lets open connections finish (up to 5 s).
///
/// This is the in-process entry point (the demo uses it); `canaryd sim`
/// is a thin shell around it.
pub async fn serve(
    listener: TcpListener,
    scenario: Scenario,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let state = Arc::new(SimState::new(scenario, shutdown.clone()));
    serve_state(listener, state).await
}

/// Like [`serve`], with a state the caller keeps (to read stats or switch
/// phases without HTTP).
pub async fn serve_state(listener: TcpListener, state: Arc<SimState>) -> Result<(), SimError> {
    let shutdown = state.shutdown.clone();
    let router = api::router(state);
    let tracker = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("sim accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}

/// Binds `addr` and serves in a background task. Returns the bound address
/// (useful with port 0), the state, and the task.
pub async fn spawn(
    addr: SocketAddr,
    scenario: Scenario,
    shutdown: CancellationToken,
) -> Result<
    (
        SocketAddr,
        Arc<SimState>,
        tokio::task::JoinHandle<Result<(), SimError>>,
    ),
    SimError,
> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let state = Arc::new(SimState::new(scenario, shutdown));
    let task = tokio::spawn(serve_state(listener, state.clone()));
    Ok((bound, state, task))
}

/// Lets a handler drop its own connection (the `reset` fault). Handlers
/// find it in the request extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnAbort(CancellationToken);

impl ConnAbort {
    pub(crate) fn fire(&self) {
        self.0.cancel();
    }
}

/// One keep-alive HTTP/1.1 connection. Hyper is driven directly (not
/// through `axum::serve`) so that a handler can abort the connection
/// without a response, which the `reset` fault needs.
async fn serve_connection(stream: TcpStream, router: axum::Router, shutdown: CancellationToken) {
    let abort = ConnAbort::default();
    let io = TokioIo::new(AbortableStream {
        inner: stream,
        abort: abort.0.clone(),
    });
    let ext = abort.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ext.clone());
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // Dropping the connection drops the socket, which resets it.
        _ = abort.0.cancelled() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// A TCP stream that, when its connection was aborted, closes with RST
/// (zero linger) instead of FIN: what a crashed proxy looks like.
struct AbortableStream {
    inner: TcpStream,
    abort: CancellationToken,
}

impl Drop for AbortableStream {
    fn drop(&mut self) {
        if self.abort.is_cancelled() {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for AbortableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
