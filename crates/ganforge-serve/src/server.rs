//! The HTTP server: the "this X does not exist" page, the generation API and the live dashboard.
//!
//! One worker thread owns the generator. Requests queue to it, and it takes every request that
//! arrives within 2 ms of the first (up to 64 images) into one generator call: on a CPU one
//! call for 16 images costs far less than 16 calls. The model is loaded once, and again only when
//! the run (still training) writes a newer checkpoint. Only the run's sample grids are served
//! from disk, by a name that must look like `step_000500.png`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ganforge::burn::tensor::Device;
use ganforge::image_io::{grid_cols, ImageBatch};
use ganforge::run::{MetricsLog, RunDir};
use ganforge::sample::Sampler;
use serde_json::json;

/// Most images one request may ask for.
pub const MAX_N: usize = 64;
/// Most frames of an interpolation strip.
pub const MAX_STEPS: usize = 16;
/// A request waits at most this long for its images.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Images the worker puts into one generator call, at most.
const BATCH_IMAGES: usize = 64;
/// Default of `ServeOptions::header_timeout`: a browser sends its request head (a few hundred
/// bytes) at once, so even a slow link needs far less; and the dashboard polls every 2 s, so
/// its connection stays in use. A connection opened and left idle, or sending its head a byte
/// at a time, gives its slot back within this time: with every slot taken by such connections
/// (bench/reliability.py opens 300), a real request waits about this long for one.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `ServeOptions::max_connections`: well under the smallest common limit on open
/// files (256 on macOS; 1024 on Linux), so the process keeps descriptors for its checkpoints,
/// logs and sample grids; a browser opens at most 6 connections to a host, so this is room for
/// 20 viewers at once.
pub const MAX_CONNECTIONS: usize = 128;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_HTML: &str = include_str!("../assets/dashboard.html");

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Run(#[from] ganforge::run::RunError),
    #[error(transparent)]
    Model(ganforge::sample::SampleError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("starting the server: {0}")]
    Runtime(std::io::Error),
}

/// Which latents a job wants: seeds, by the library's one rule for the image of a seed
/// (`ganforge::sample::seed_latent` and `seed_class`), so that `/api/generate?seed=S` is the
/// image `ganforge sample --seeds S` writes.
#[derive(Clone, Debug)]
enum Latents {
    /// Seeds `seed` to `seed + n - 1`, one image each, truncated when asked.
    Seed { seed: u64, n: usize, truncation: Option<f32> },
    /// A straight line from seed `from`'s latent to seed `to`'s, `steps` frames.
    Between { from: u64, to: u64, steps: usize, truncation: Option<f32> },
}

impl Latents {
    fn count(&self) -> usize {
        match self {
            Latents::Seed { n, .. } => *n,
            Latents::Between { steps, .. } => *steps,
        }
    }

    fn seeds(seed: u64, n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| seed.wrapping_add(i)).collect()
    }

    /// The classes of the images when the request names none: each seed's own class (so one
    /// image per seed shows every class in turn), and a walk stays in the class of its start.
    fn default_classes(&self, s: &Sampler) -> Vec<u32> {
        let classes = match *self {
            Latents::Seed { seed, n, .. } => s.seed_classes(&Self::seeds(seed, n)),
            Latents::Between { from, steps, .. } => s.seed_classes(&vec![from; steps]),
        };
        classes.unwrap_or_default()
    }

    fn truncation(&self) -> Option<f32> {
        match *self {
            Latents::Seed { truncation, .. } | Latents::Between { truncation, .. } => truncation,
        }
    }

    fn draw(&self, s: &Sampler) -> Vec<f32> {
        match *self {
            Latents::Seed { seed, n, truncation } => s.seed_latents(&Self::seeds(seed, n), truncation),
            Latents::Between { from, to, steps, truncation } => s.interpolation(from, to, steps, truncation),
        }
    }
}

struct Job {
    latents: Latents,
    class: Option<u32>,
    reply: tokio::sync::oneshot::Sender<Result<ImageBatch, (StatusCode, String)>>,
}

/// What the page and the API tell about the model.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ModelInfo {
    pub arch: String,
    pub image_size: usize,
    pub channels: usize,
    pub nz: usize,
    pub classes: usize,
    pub class_names: Vec<String>,
    pub truncation: bool,
    pub checkpoint: String,
    pub step: Option<u64>,
    pub preset: String,
    /// What an image shows, for the page's "This dog does not exist".
    pub subject: String,
}

impl ModelInfo {
    fn of(s: &Sampler) -> Self {
        let c = &s.cfg;
        Self {
            arch: format!("{:?}", c.model.arch).to_lowercase(),
            image_size: c.model.image_size,
            channels: c.model.channels,
            nz: c.model.nz,
            classes: c.model.classes,
            class_names: c.data.classes.clone(),
            truncation: matches!(c.model.arch, ganforge::nets::Arch::Biggan | ganforge::nets::Arch::Stylegan2),
            checkpoint: s.checkpoint.display().to_string(),
            step: s.step,
            preset: c.preset.clone(),
            subject: c.subject(),
        }
    }
}

/// What the server makes images with.
#[derive(Clone, Debug)]
enum Serving {
    /// A run folder's latest checkpoint, followed while the run trains.
    Run(PathBuf),
    /// One generator file (its metadata rebuilds G): no run folder, no dashboard data.
    Model(PathBuf),
}

/// The worker: loads G when needed and serves jobs in batches; `calls` counts generator calls.
fn worker(serving: Serving, device: Device, jobs: mpsc::Receiver<Job>, info: Arc<Mutex<Option<ModelInfo>>>, calls: Arc<AtomicU64>) {
    // The generator and the checkpoint folder (or file) it came from.
    let mut sampler: Option<(Sampler, PathBuf)> = None;
    // A run still training writes new checkpoints: look for one at start, then at most every 5 s.
    let refresh = |sampler: &mut Option<(Sampler, PathBuf)>| {
        let run = match &serving {
            Serving::Run(run) => run,
            Serving::Model(_) if sampler.is_some() => return,
            Serving::Model(file) => {
                match Sampler::from_model_file(file, &device) {
                    Ok(s) => {
                        *info.lock().expect("not poisoned") = Some(ModelInfo::of(&s));
                        *sampler = Some((s, file.clone()));
                    }
                    Err(e) => eprintln!("serve: could not load the generator: {e}"),
                }
                return;
            }
        };
        let Some(latest) = RunDir::open(run).ok().and_then(|r| r.latest_checkpoint().ok()) else { return };
        if sampler.as_ref().is_some_and(|(_, dir)| *dir == latest) {
            return;
        }
        match Sampler::load(run, Some(&latest), &device) {
            Ok(s) => {
                *info.lock().expect("not poisoned") = Some(ModelInfo::of(&s));
                *sampler = Some((s, latest));
            }
            Err(e) => eprintln!("serve: could not load the generator: {e}"),
        }
    };
    refresh(&mut sampler);
    let mut checked = Instant::now();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut images = batch[0].latents.count();
        let deadline = Instant::now() + Duration::from_millis(2);
        while images < BATCH_IMAGES {
            match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(j) => {
                    images += j.latents.count();
                    batch.push(j);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if checked.elapsed() > Duration::from_secs(5) {
            checked = Instant::now();
            refresh(&mut sampler);
        }
        let Some((s, _)) = &sampler else {
            for j in batch {
                let _ = j.reply.send(Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the run has no checkpoint yet: its generator appears after its first checkpoint".into(),
                )));
            }
            continue;
        };
        serve_batch(s, batch, &calls);
    }
}

/// One generator call for all of `batch`, then each job gets its images back.
fn serve_batch(s: &Sampler, batch: Vec<Job>, calls: &AtomicU64) {
    let classes = s.cfg.model.classes;
    let mut ok = Vec::new();
    // A request whose client has gone (or timed out) costs nothing more.
    for j in batch.into_iter().filter(|j| !j.reply.is_closed()) {
        match (j.class, classes) {
            (Some(_), 0) => {
                let _ = j.reply.send(Err((StatusCode::BAD_REQUEST, "this model is not conditional: leave out class".into())));
            }
            (Some(k), c) if k as usize >= c => {
                let _ = j
                    .reply
                    .send(Err((StatusCode::BAD_REQUEST, format!("class {k} is out of range: the model knows classes 0 to {}", c - 1))));
            }
            _ => ok.push(j),
        }
    }
    if ok.is_empty() {
        return;
    }
    let z: Vec<f32> = ok.iter().flat_map(|j| j.latents.draw(s)).collect();
    let labels: Option<Vec<u32>> = (classes > 0).then(|| {
        ok.iter()
            .flat_map(|j| match j.class {
                Some(k) => vec![k; j.latents.count()],
                None => j.latents.default_classes(s),
            })
            .collect()
    });
    let psi: Vec<f32> = ok.iter().flat_map(|j| s.psi(j.latents.count(), j.latents.truncation())).collect();
    let all = s.generate_styled(&z, labels.as_deref(), &psi);
    calls.fetch_add(1, Ordering::Relaxed);
    let per = all.channels * all.height * all.width;
    let mut start = 0;
    for j in ok {
        let n = j.latents.count();
        let part = ImageBatch { values: all.values[start * per..(start + n) * per].to_vec(), n, ..all.clone() };
        start += n;
        let _ = j.reply.send(Ok(part));
    }
}

#[derive(Clone)]
struct AppState {
    /// The run folder, when serving one.
    run: Option<PathBuf>,
    jobs: mpsc::SyncSender<Job>,
    info: Arc<Mutex<Option<ModelInfo>>>,
}

impl AppState {
    /// The run's metrics.jsonl as it is now (empty while it is unreadable or absent).
    fn log(&self) -> MetricsLog {
        self.run.as_ref().and_then(|r| RunDir { path: r.clone() }.log().ok()).unwrap_or_default()
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(json!({ "error": msg.into() }))).into_response()
}

fn png_response(bytes: Vec<u8>, seed: Option<u64>) -> Response {
    let mut r = (StatusCode::OK, [(header::CONTENT_TYPE, "image/png")], bytes).into_response();
    if let Some(s) = seed {
        r.headers_mut().insert("x-seed", s.to_string().parse().expect("digits are a valid header"));
    }
    r
}

/// A query string the API refuses (answered with a 400 and this message).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct BadQuery(pub String);

/// A query parameter parsed, with an error naming it when it does not parse or is out of range.
fn param<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
    ok: impl Fn(&T) -> bool,
    what: &str,
) -> Result<Option<T>, BadQuery> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => match v.parse::<T>() {
            Ok(x) if ok(&x) => Ok(Some(x)),
            _ => Err(BadQuery(format!("{name}={v:?} is not {what}"))),
        },
    }
}

fn check_known(q: &HashMap<String, String>, known: &[&str]) -> Result<(), BadQuery> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(BadQuery(format!("unknown parameter '{k}'; this endpoint takes {}", known.join(", ")))),
        None => Ok(()),
    }
}

fn truncation(q: &HashMap<String, String>) -> Result<Option<f32>, BadQuery> {
    param::<f32>(q, "truncation", |t| t.is_finite() && (0.05..=4.0).contains(t), "a truncation from 0.05 to 4")
}

/// What `/api/generate` asks for. Public, with [`GenerateQuery::parse`], so that the parsing
/// of outside query strings can be tested and fuzzed without a running server.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateQuery {
    /// None: a random seed, said in the reply's x-seed header.
    pub seed: Option<u64>,
    /// 1 to [`MAX_N`].
    pub n: usize,
    pub class: Option<u32>,
    /// Finite, 0.05 to 4.
    pub truncation: Option<f32>,
}

impl GenerateQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, BadQuery> {
        check_known(q, &["seed", "n", "class", "truncation"])?;
        Ok(Self {
            seed: param::<u64>(q, "seed", |_| true, "a non-negative integer")?,
            n: param::<usize>(q, "n", |n| (1..=MAX_N).contains(n), &format!("an image count from 1 to {MAX_N}"))?.unwrap_or(1),
            class: param::<u32>(q, "class", |_| true, "a class index")?,
            truncation: truncation(q)?,
        })
    }
}

/// What `/api/interpolate` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct InterpolateQuery {
    pub from: u64,
    pub to: u64,
    /// 2 to [`MAX_STEPS`].
    pub steps: usize,
    pub class: Option<u32>,
    /// Finite, 0.05 to 4.
    pub truncation: Option<f32>,
}

impl InterpolateQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, BadQuery> {
        check_known(q, &["from", "to", "steps", "class", "truncation"])?;
        let from = param::<u64>(q, "from", |_| true, "a non-negative integer")?;
        let to = param::<u64>(q, "to", |_| true, "a non-negative integer")?;
        let steps =
            param::<usize>(q, "steps", |s| (2..=MAX_STEPS).contains(s), &format!("a frame count from 2 to {MAX_STEPS}"))?.unwrap_or(8);
        let class = param::<u32>(q, "class", |_| true, "a class index")?;
        let truncation = truncation(q)?;
        match (from, to) {
            (Some(from), Some(to)) => Ok(Self { from, to, steps, class, truncation }),
            _ => Err(BadQuery("from and to (two seeds) are required".into())),
        }
    }
}

async fn run_job(state: &AppState, latents: Latents, class: Option<u32>) -> Result<ImageBatch, Response> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state
        .jobs
        .try_send(Job { latents, class, reply: tx })
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the generator is busy; try again"))?;
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Ok(Ok(Ok(images))) => Ok(images),
        Ok(Ok(Err((status, msg)))) => Err(error(status, msg)),
        Ok(Err(_)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "the generator stopped")),
        Err(_) => Err(error(StatusCode::GATEWAY_TIMEOUT, format!("no images within {} s", REQUEST_TIMEOUT.as_secs()))),
    }
}

/// One image as PNG, or a grid of several.
fn encode(images: &ImageBatch, cols: usize) -> Vec<u8> {
    if images.n == 1 {
        images.png(0)
    } else {
        ganforge::image_io::png_bytes(&images.grid(cols))
    }
}

async fn generate(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let GenerateQuery { seed, n, class, truncation } = match GenerateQuery::parse(&q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    let seed = seed.unwrap_or_else(|| rand::random::<u32>() as u64);
    match run_job(&state, Latents::Seed { seed, n, truncation }, class).await {
        Ok(images) => png_response(encode(&images, grid_cols(images.n)), Some(seed)),
        Err(r) => r,
    }
}

async fn interpolate(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let InterpolateQuery { from, to, steps, class, truncation } = match InterpolateQuery::parse(&q) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    match run_job(&state, Latents::Between { from, to, steps, truncation }, class).await {
        Ok(images) => png_response(encode(&images, images.n), None),
        Err(r) => r,
    }
}

async fn model(State(state): State<AppState>) -> Response {
    let info = state.info.lock().expect("not poisoned").clone();
    let log = state.log();
    let metrics = log.evals.last().map(|(step, e)| json!({ "step": step, "metrics": e.metrics }));
    match info {
        Some(i) => axum::Json(json!({ "model": i, "metrics": metrics, "training_step": log.steps.last().map(|r| r.step) })).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the run has no checkpoint yet: its generator appears after its first checkpoint"),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let log = state.log();
    // A long run's trace is thinned to about 1,000 points for the page.
    let stride = (log.steps.len() / 1000).max(1);
    let steps: Vec<_> =
        log.steps.iter().enumerate().filter(|(i, _)| i % stride == 0 || *i + 1 == log.steps.len()).map(|(_, r)| r).collect();
    let samples = state.run.as_deref().map(sample_names).unwrap_or_default();
    axum::Json(json!({
        "run": state.run.as_ref().and_then(|r| r.file_name()).and_then(|n| n.to_str()).unwrap_or(""),
        "steps": steps,
        "evals": log.evals.iter().map(|(s, e)| json!({ "step": s, "metrics": e.metrics })).collect::<Vec<_>>(),
        "findings": log.findings,
        "samples": samples,
    }))
    .into_response()
}

/// The sample grids of a run, oldest first.
pub fn sample_names(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("samples"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| is_sample_name(n)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn is_sample_name(name: &str) -> bool {
    name.strip_prefix("step_").and_then(|r| r.strip_suffix(".png")).is_some_and(|d| d.len() >= 6 && d.bytes().all(|b| b.is_ascii_digit()))
}

async fn sample_file(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    if !is_sample_name(&name) {
        return error(StatusCode::NOT_FOUND, "no such sample grid");
    }
    let Some(run) = &state.run else { return error(StatusCode::NOT_FOUND, "no such sample grid") };
    match tokio::fs::read(run.join("samples").join(&name)).await {
        Ok(bytes) => png_response(bytes, None),
        Err(_) => error(StatusCode::NOT_FOUND, "no such sample grid"),
    }
}

async fn chart(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let log = state.log();
    match name.strip_suffix(".svg").and_then(|n| crate::chart::run_chart(&log, n)) {
        Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response(),
        None => error(StatusCode::NOT_FOUND, "charts: loss.svg, d.svg, speed.svg, lr.svg, eval.svg, coverage.svg"),
    }
}

fn html(page: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// A running server.
pub struct ServeHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    generator_calls: Arc<AtomicU64>,
}

impl ServeHandle {
    /// How many times the worker has called the generator: fewer than the requests served when
    /// requests arriving together were batched (what the tests check).
    pub fn generator_calls(&self) -> u64 {
        self.generator_calls.load(Ordering::Relaxed)
    }

    /// Blocks until the server stops (it stops on Ctrl-C only through the process ending).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the server treats connections; `Default` is what `spawn` uses.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A connection must send a complete request head within this time of opening, and of
    /// finishing its previous response, or it is closed. So this is also the idle timeout of a
    /// kept-alive connection: hyper starts the same clock when it waits for the next request.
    pub header_timeout: Duration,
    /// Most connections open at once. Further ones wait in the system's listen backlog, holding
    /// no descriptor of this process, until a connection closes.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { header_timeout: HEADER_TIMEOUT, max_connections: MAX_CONNECTIONS }
    }
}

/// A warning for the console when `addr` is not a loopback address: the page and the API have
/// no authentication, so anyone who can reach the machine can use them. None for loopback.
pub fn exposure_warning(addr: &SocketAddr) -> Option<String> {
    (!addr.ip().to_canonical().is_loopback()).then(|| {
        format!(
            "warning: serving on {addr}, not a loopback address: the image page, the dashboard and the API (with the run's \
             metrics and sample grids) are reachable by anyone on the network, without authentication; \
             use --addr 127.0.0.1:PORT to serve this machine only"
        )
    })
}

/// Starts serving `run` on `addr` (port 0: any free port; see the handle's `addr`).
pub fn spawn(run: &Path, addr: SocketAddr, device: Device) -> Result<ServeHandle, ServeError> {
    spawn_with(run, addr, device, ServeOptions::default())
}

/// The routes, with the headers every response carries.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { html(INDEX_HTML) }))
        .route("/dashboard", get(|| async { html(DASHBOARD_HTML) }))
        .route("/api/generate", get(generate))
        .route("/api/interpolate", get(interpolate))
        .route("/api/model", get(model))
        .route("/api/metrics", get(metrics))
        .route("/api/chart/{name}", get(chart))
        .route("/samples/{name}", get(sample_file))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page; try / (images), /dashboard or /api/generate") })
        .layer(axum::middleware::map_response(common_headers))
        .with_state(state)
}

/// `nosniff`: a browser must take each response as the type it says (a PNG, JSON), never guess
/// it to be HTML or script.
async fn common_headers(mut r: Response) -> Response {
    r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// Serves connections from `listener` until `shutdown`, each under `opts`' timeout and cap, then
/// waits for the open ones to finish their responses.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    opts: ServeOptions,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let cap = opts.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    loop {
        // A slot before accepting: connections over the cap wait in the backlog, not in here.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (or the like) repeats until something closes: pause.
                    // A connection that failed on its own is nothing to wait for.
                    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
                    if !matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (app, mut closing_rx, header_timeout) = (app.clone(), closing_rx.clone(), opts.header_timeout);
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut conn = pin!(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing_rx.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = closing.send(true);
    // Each connection holds a slot until it ends: holding them all means all have ended.
    let _ = slots.acquire_many(cap as u32).await;
}

/// `spawn` with other connection limits (tests use short timeouts).
pub fn spawn_with(run: &Path, addr: SocketAddr, device: Device, opts: ServeOptions) -> Result<ServeHandle, ServeError> {
    if !run.join("config.toml").is_file() {
        return Err(ServeError::Run(ganforge::run::RunError::NotARun(run.to_path_buf())));
    }
    start(Serving::Run(run.to_path_buf()), addr, device, opts)
}

/// Serves one generator file (a checkpoint's g.safetensors or an exported model.safetensors)
/// without its run folder: the page and the API, with no dashboard data.
pub fn spawn_model(file: &Path, addr: SocketAddr, device: Device, opts: ServeOptions) -> Result<ServeHandle, ServeError> {
    // Loaded once here, so that a bad file (no config, wrong shapes, a NaN) is a clear error at
    // start rather than a worker's complaint at the first request; the worker loads its own.
    Sampler::from_model_file(file, &device).map_err(ServeError::Model)?;
    start(Serving::Model(file.to_path_buf()), addr, device, opts)
}

fn start(serving: Serving, addr: SocketAddr, device: Device, opts: ServeOptions) -> Result<ServeHandle, ServeError> {
    let run = match &serving {
        Serving::Run(r) => Some(r.clone()),
        Serving::Model(_) => None,
    };
    let info = Arc::new(Mutex::new(None));
    let generator_calls = Arc::new(AtomicU64::new(0));
    // A bounded queue: a flood of requests is refused with 503 rather than held in memory.
    let (jobs, rx) = mpsc::sync_channel::<Job>(1024);
    {
        let (info, calls) = (info.clone(), generator_calls.clone());
        std::thread::Builder::new()
            .name("ganforge-generator".into())
            .spawn(move || worker(serving, device, rx, info, calls))
            .map_err(ServeError::Runtime)?;
    }
    let app = router(AppState { run, jobs, info });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(ServeError::Runtime)?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ServeError::Runtime)?;
    if let Some(w) = exposure_warning(&bound) {
        eprintln!("{w}");
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ganforge-http".into())
        .spawn(move || rt.block_on(serve_connections(listener, app, opts, rx)))
        .map_err(ServeError::Runtime)?;
    Ok(ServeHandle { addr: bound, shutdown: Some(tx), thread: Some(thread), generator_calls })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn generate_query_defaults_ranges_and_messages() {
        let q = GenerateQuery::parse(&query(&[])).unwrap();
        assert_eq!(q, GenerateQuery { seed: None, n: 1, class: None, truncation: None });
        let q = GenerateQuery::parse(&query(&[("seed", "7"), ("n", "64"), ("class", "3"), ("truncation", "0.5")])).unwrap();
        assert_eq!(q, GenerateQuery { seed: Some(7), n: 64, class: Some(3), truncation: Some(0.5) });
        let e = GenerateQuery::parse(&query(&[("n", "65")])).unwrap_err();
        assert_eq!(e.0, "n=\"65\" is not an image count from 1 to 64");
        let e = GenerateQuery::parse(&query(&[("truncation", "NaN")])).unwrap_err();
        assert_eq!(e.0, "truncation=\"NaN\" is not a truncation from 0.05 to 4");
        let e = GenerateQuery::parse(&query(&[("colour", "red")])).unwrap_err();
        assert_eq!(e.0, "unknown parameter 'colour'; this endpoint takes seed, n, class, truncation");
    }

    #[test]
    fn interpolate_query_needs_both_seeds() {
        let q = InterpolateQuery::parse(&query(&[("from", "1"), ("to", "2")])).unwrap();
        assert_eq!(q, InterpolateQuery { from: 1, to: 2, steps: 8, class: None, truncation: None });
        assert_eq!(InterpolateQuery::parse(&query(&[("from", "1")])).unwrap_err().0, "from and to (two seeds) are required");
        let e = InterpolateQuery::parse(&query(&[("from", "1"), ("to", "2"), ("steps", "1")])).unwrap_err();
        assert_eq!(e.0, "steps=\"1\" is not a frame count from 2 to 16");
    }
}
