//! Configuration: a TOML file, every value defaulted, unknown keys refused.
//!
//! Configuration flows one way: this file → validated settings per module →
//! `wasmtime::Config` → `Engine` → `InstancePre` per component → `Store` per
//! call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Everything warmlane can be told. `Config::default()` is what runs when no
/// file is given.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The WebAssembly engine.
    pub engine: EngineConfig,
    /// How documents are split, parsed and chunked.
    pub pipeline: PipelineConfig,
    /// Limits and pool size for every component, unless overridden.
    pub instances: InstanceConfig,
    /// Per-component overrides of `instances`, by component name
    /// (`pdf-pages`, `chunker`, `text-stats`, `notes`, or a plugin's name).
    pub components: BTreeMap<String, InstanceOverride>,
    /// Components loaded from a directory besides the built-ins.
    pub plugins: PluginConfig,
    /// Host-side session state.
    pub sessions: SessionConfig,
    /// How jobs are sorted into the light and heavy lanes.
    pub lanes: LanesConfig,
    /// Token budgets that components draw from, by name. None by default.
    pub budgets: BTreeMap<String, BudgetConfig>,
    /// HTTP services components may call through the host, by name. None by
    /// default: no component can reach anything outside the host.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Where budgets and sessions are kept when several hosts share them.
    pub redis: RedisConfig,
    /// `warmlane serve`.
    pub server: ServerConfig,
    /// Limits on reading PDFs, in the host and in the page parser.
    pub pdf: PdfConfig,
    /// Document jobs shared by replicas through Redis.
    pub jobs: JobsConfig,
    /// Traces sent to an OpenTelemetry collector.
    pub telemetry: TelemetryConfig,
}

/// Traces sent to an OpenTelemetry collector over OTLP/HTTP (protobuf): a
/// span per HTTP request, tool call, document job and batch, the job's
/// context carried through Redis to the worker that parses each batch.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base address, such as
    /// `http://otel-collector:4318` (spans go to `/v1/traces` under it).
    /// Unset, the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as it is) applies;
    /// with neither, no traces are sent.
    pub otlp_endpoint: Option<String>,
}

/// Document jobs shared by replicas through Redis (with `redis.url`; see
/// `server.role`). Without Redis, a job lives in the process that took it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// How long a worker's claim on a batch lasts without its heartbeat
    /// (renewed every third of it), in milliseconds: a batch whose worker
    /// was killed is taken over this long after its last heartbeat. By
    /// default 5000.
    pub lease_ms: u64,
    /// Times a batch may be handed to a worker; past that it is a dead
    /// letter and its pages are errors that say why. By default 3.
    pub max_attempts: u32,
    /// Batches of one job in its lane at a time: several documents take
    /// turns, and one document can keep this many workers busy. By
    /// default 8.
    pub window: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            lease_ms: 5000,
            max_attempts: 3,
            window: 8,
        }
    }
}

impl JobsConfig {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

/// What a `warmlane serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything: the API, and a worker for every lane. Without Redis,
    /// the only role there is.
    All,
    /// HTTP, MCP, tool calls, uploads and reads; parses nothing.
    Api,
    /// Parses and chunks batches of the lanes in `server.lanes`; serves
    /// only `/livez`, `/readyz` and `/metrics`.
    Worker,
}

impl Role {
    /// `"all"`, `"api"` or `"worker"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// Limits on reading PDFs: what an untrusted document may make the host and
/// the page parser do. The host applies them while it reads a document and
/// cuts it into batches; each batch carries them to the page parser, which
/// applies them too. A document whose structure passes one is refused,
/// naming it; a page that reaches one is that page's error.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdfConfig {
    /// Largest size one stream may inflate to, in MiB (at most an eighth of
    /// the page parser's memory cap, `pipeline.memory_mib`). By default 32.
    pub max_stream_mib: u64,
    /// Largest ratio of a stream's inflated size to its compressed size, for
    /// streams that inflate past 1 MiB. By default 250.
    pub max_inflate_ratio: u64,
    /// Largest total the streams of one document may inflate to in the
    /// host, counting a stream again each time it is inflated again, in
    /// MiB; the page parser applies it to each batch. By default 1024.
    pub max_document_inflate_mib: u64,
    /// Longest text of one page, in MiB; a page with more is that page's
    /// error (at most an eighth of the page parser's memory cap). By
    /// default 16.
    pub max_page_text_mib: u64,
    /// Most content-stream operators one page may run, counting a form's
    /// again each time it is drawn; a page that runs more is that page's
    /// error. By default 20,000,000.
    pub max_page_operators: u64,
    /// Largest batch the host builds, in MiB of the objects its pages reach
    /// (held in memory); pages that reach more fail with that error. By
    /// default 16.
    pub max_batch_mib: u64,
    /// Most pages a document may have. By default 100,000.
    pub max_pages: u64,
}

impl Default for PdfConfig {
    fn default() -> Self {
        let l = warmlane_pdf::Limits::default();
        PdfConfig {
            max_stream_mib: l.stream_bytes >> 20,
            max_inflate_ratio: l.ratio,
            max_document_inflate_mib: l.total_bytes >> 20,
            max_page_text_mib: l.page_text_bytes >> 20,
            max_page_operators: l.page_operators,
            max_batch_mib: l.batch_bytes >> 20,
            max_pages: l.max_pages,
        }
    }
}

impl PdfConfig {
    /// The limits, as the reader and the parser take them, for a parser
    /// whose instances have `parser_memory` bytes: one stream, and one
    /// page's text, may take at most an eighth of that (a larger one could
    /// not be held beside the batch it came in).
    pub fn limits_for_parser(&self, parser_memory: u64) -> warmlane_pdf::Limits {
        let mut limits = self.limits();
        let room = (parser_memory / 8).max(1 << 20);
        limits.stream_bytes = limits.stream_bytes.min(room);
        limits.page_text_bytes = limits.page_text_bytes.min(room);
        limits
    }

    /// The limits, as configured.
    pub fn limits(&self) -> warmlane_pdf::Limits {
        warmlane_pdf::Limits {
            stream_bytes: self.max_stream_mib << 20,
            ratio: self.max_inflate_ratio,
            total_bytes: self.max_document_inflate_mib << 20,
            page_text_bytes: self.max_page_text_mib << 20,
            page_operators: self.max_page_operators,
            batch_bytes: self.max_batch_mib << 20,
            max_pages: self.max_pages,
        }
    }
}

/// `warmlane serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. By default `127.0.0.1:8080`.
    pub listen: String,
    /// Largest document upload, in MiB; larger ones get 413. By default 64.
    pub max_upload_mib: u64,
    /// Largest document, in pages, the synchronous variant (`?wait=true`)
    /// accepts; larger ones must be submitted and streamed. By default 200.
    pub sync_max_pages: u32,
    /// After SIGTERM, how long running jobs and open requests may take to
    /// finish before the process exits anyway, in seconds. By default 30.
    pub shutdown_grace_secs: u64,
    /// How long a finished job's results stay readable, in seconds. By
    /// default 600.
    pub job_retention_secs: u64,
    /// How long a client has to send a request's head (request line and
    /// headers), in seconds, counted from when the connection waits for
    /// it; a slower connection is closed. By default 10.
    pub header_timeout_secs: u64,
    /// Longest pause while a request body arrives, in seconds; the request
    /// then gets 408 and its connection is closed. By default 30.
    pub body_timeout_secs: u64,
    /// Uploads received and opened at once; more get 503 with
    /// `Retry-After`. By default 8.
    pub max_uploads: usize,
    /// Largest request body other than an upload (a tool call), in KiB;
    /// larger ones get 413. By default 1024.
    pub max_request_kib: u64,
    /// Memory the results of finished jobs may hold, in MiB; past it the
    /// oldest finished jobs' results are dropped (their state says
    /// `evicted`). By default 128.
    pub max_results_mib: u64,
    /// Memory the uploads of accepted jobs not yet finished may hold, in
    /// MiB; past it uploads get 429 with `Retry-After` (one upload always
    /// fits). By default 1024.
    pub max_pending_mib: u64,
    /// What this process does: `all`, `api` or `worker` (`api` and
    /// `worker` need `redis.url`). By default `all`.
    pub role: Role,
    /// The lanes a worker serves (`all` serves both). By default
    /// `["light", "heavy"]`.
    pub lanes: Vec<crate::lanes::Lane>,
    /// `Host` header values `/mcp` accepts (names, or `name:port`), against
    /// DNS rebinding; `["*"]` accepts any. By default the loopback names
    /// `localhost`, `127.0.0.1` and `::1`: list the names clients use to
    /// reach a deployed server.
    pub mcp_allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_upload_mib: 64,
            sync_max_pages: 200,
            shutdown_grace_secs: 30,
            job_retention_secs: 600,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_uploads: 8,
            max_request_kib: 1024,
            max_results_mib: 128,
            max_pending_mib: 1024,
            role: Role::All,
            lanes: vec![crate::lanes::Lane::Light, crate::lanes::Lane::Heavy],
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        }
    }
}

/// The WebAssembly engine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Use wasmtime's pooling allocator. When the address space it needs
    /// cannot be reserved, warmlane warns and allocates on demand instead.
    /// By default `true`.
    pub pooling: bool,
    /// Instance slots the pooling allocator reserves, across all components.
    /// By default 0, meaning: enough for every warm pool plus four calls in
    /// flight per core per component.
    pub instance_slots: u32,
    /// How often the deadline clock ticks, in milliseconds; deadlines are
    /// enforced to within one tick. By default 5.
    pub tick_ms: u64,
    /// Compile components at start when no code compiled ahead of time
    /// fits (a plugin not precompiled with `warmlane compile`, or a machine
    /// without the CPU features the binary's built-ins were compiled for).
    /// Compiling a large plugin needs several times the memory the host
    /// runs in: set `false` where memory is limited to what serving needs,
    /// and such a component is refused at start, naming the fix. By
    /// default `true`.
    pub compile_at_start: bool,
    /// Keep the native code of components compiled at start (plugins
    /// without a precompiled file, or built-ins this machine could not use
    /// as built) in a cache directory, so later starts skip compiling. By
    /// default `true`.
    pub compile_cache: bool,
    /// The compile cache's directory. By default `$XDG_CACHE_HOME/warmlane`
    /// or `~/.cache/warmlane`.
    pub compile_cache_dir: Option<PathBuf>,
    /// The compile cache's largest size, in MiB: older builds of a plugin
    /// leave when a newer one is stored, then the least recently used
    /// entries. By default 256.
    pub compile_cache_mib: u64,
    /// Linear memory kept resident (not returned to the OS) in each reused
    /// instance slot, in KiB: a taken instance then starts without page
    /// faults. Costs up to this much memory per slot in use. By default 4096.
    pub keep_resident_kib: u64,
}

impl EngineConfig {
    /// Where the compile cache is, when there is one.
    pub fn compile_cache_dir(&self) -> Option<PathBuf> {
        if !self.compile_cache {
            return None;
        }
        self.compile_cache_dir
            .clone()
            .or_else(crate::compile::Cache::default_dir)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            instance_slots: 0,
            tick_ms: 5,
            compile_at_start: true,
            compile_cache: true,
            compile_cache_dir: None,
            compile_cache_mib: 256,
            keep_resident_kib: 4096,
        }
    }
}

/// What sizes chunks count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkUnit {
    /// cl100k tokens.
    Tokens,
    /// Unicode characters.
    Characters,
}

/// How documents are split, parsed and chunked.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Pages per batch handed to the page parser. By default 16.
    pub batch_pages: u32,
    /// Batches parsed at once across the host: the heavy lane's workers,
    /// and the limit up to which an idle lane lends its workers to the
    /// other. By default 0, meaning one per core.
    pub workers: usize,
    /// Largest chunk, in `chunk_unit`s. By default 512.
    pub chunk_size: u32,
    /// How much of a chunk the next one repeats. By default 64.
    pub chunk_overlap: u32,
    /// What chunk sizes count. By default `tokens`.
    pub chunk_unit: ChunkUnit,
    /// The page-parser component to use. By default `pdf-pages`.
    pub parser: String,
    /// The chunker component to use. By default `chunker`.
    pub chunker: String,
    /// Linear memory cap of the page parser's and the chunker's instances,
    /// in MiB, unless `[components.NAME] memory_mib` says otherwise: these
    /// instances read untrusted documents, and honest ones need a few MiB.
    /// By default 64.
    pub memory_mib: u64,
    /// CPU time a document may use to be parsed, in milliseconds, beside
    /// its share per page: every parsing call made for it (retries too) is
    /// charged to it, and once it is spent the pages not yet parsed are
    /// errors that say so. By default 500.
    pub cpu_ms_per_document: u64,
    /// CPU time a document may use per page, in milliseconds: to be parsed
    /// (on top of `cpu_ms_per_document`), and again to be chunked; honest
    /// pages take one or two. The first try at a batch may use a quarter of
    /// it per page (a batch that needs more is retried page by page). Text
    /// the chunking budget does not cover is an error of its page, except
    /// an ordinary page's worth (64 KiB), which is always chunked. By
    /// default 250.
    pub cpu_ms_per_page: u64,
    /// CPU time one page may use when it is retried alone after its batch
    /// failed, in milliseconds. By default 1000.
    pub page_retry_cpu_ms: u64,
    /// Most page text one call to the chunker is given, in KiB; longer
    /// pages are given in pieces. By default 256.
    pub chunk_input_kib: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_pages: 16,
            workers: 0,
            chunk_size: 512,
            chunk_overlap: 64,
            chunk_unit: ChunkUnit::Tokens,
            parser: "pdf-pages".into(),
            chunker: "chunker".into(),
            memory_mib: 64,
            cpu_ms_per_document: 500,
            cpu_ms_per_page: 250,
            page_retry_cpu_ms: 1000,
            chunk_input_kib: 256,
        }
    }
}

impl PipelineConfig {
    /// `workers`, with 0 resolved to the number of cores.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers
        }
    }
}

/// Limits on each instance and the size of each warm pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceConfig {
    /// Instances kept instantiated and ready. By default 2.
    pub warm: usize,
    /// Linear memory cap per instance, in MiB. By default 256.
    pub memory_mib: u64,
    /// Wall-clock deadline per call, in milliseconds. By default 30000.
    pub deadline_ms: u64,
    /// CPU time one call may use (of the thread running it), in
    /// milliseconds: what stops a guest that spins, however busy the
    /// machine. By default 10000.
    pub cpu_ms: u64,
    /// Calls an instance serves, for any caller, before it is thrown away.
    /// By default 1: nothing leaks from one caller's call to another's.
    pub calls_per_instance: u32,
    /// Calls an instance serves for one caller: a session's next tool call,
    /// or a document's next batch, takes the instance the last one used,
    /// when that one is free and did not fail, until it has served this
    /// many. Such an instance never serves another session or document, and
    /// waits at most 30 s for its caller's next call. By default 100; 1 gives
    /// every call a fresh instance.
    pub reuse_calls: u32,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        InstanceConfig {
            warm: 2,
            memory_mib: 256,
            deadline_ms: 30_000,
            cpu_ms: 10_000,
            calls_per_instance: 1,
            reuse_calls: 100,
        }
    }
}

impl InstanceConfig {
    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The CPU time one call may use.
    pub fn cpu(&self) -> Duration {
        Duration::from_millis(self.cpu_ms)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }
}

/// A per-component override: every field optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceOverride {
    /// See [`InstanceConfig::warm`].
    pub warm: Option<usize>,
    /// See [`InstanceConfig::memory_mib`].
    pub memory_mib: Option<u64>,
    /// See [`InstanceConfig::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// See [`InstanceConfig::cpu_ms`].
    pub cpu_ms: Option<u64>,
    /// See [`InstanceConfig::calls_per_instance`].
    pub calls_per_instance: Option<u32>,
    /// See [`InstanceConfig::reuse_calls`].
    pub reuse_calls: Option<u32>,
    /// The budget (a name under `[budgets]`) each call draws from. By
    /// default none: calls are free.
    pub budget: Option<String>,
    /// How a call's cost is counted. By default `pages` for page parsers and
    /// `calls` for chunkers and tools.
    pub cost: Option<CostRule>,
    /// The upstreams (names under `[upstreams]`) the component may call over
    /// `wasi:http`. By default none: every request is denied.
    #[serde(default)]
    pub upstreams: Vec<String>,
}

/// An HTTP service components may call through the host: where it is, what
/// the host adds to each request, how long and how large a request may be,
/// and the budget its requests draw.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URLs: a request belongs to this upstream when its scheme, host
    /// and port are one of these and its path starts with that one's path
    /// (`https://api.openai.com/v1` allows `/v1/chat/completions`, not
    /// `/v2/...`). Required.
    pub urls: Vec<String>,
    /// Allows `http://` base URLs: requests and injected secrets in plain
    /// text (for a service beside warmlane, or tests). By default false:
    /// only `https://`, verified against the webpki roots.
    #[serde(default)]
    pub plain_http: bool,
    /// Headers the host sets on every request, replacing any of the same
    /// name the component set. The component never sees their values.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSource>,
    /// Connecting (and TLS), in milliseconds. By default 5,000.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// From sending the request to the response's headers, in milliseconds.
    /// By default 30,000.
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_timeout_ms: u64,
    /// The whole request, waits for budget and retries included, in
    /// milliseconds; never past the calling instance's deadline. By default
    /// 60,000.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
    /// The largest request body, in KiB. By default 1,024.
    #[serde(default = "default_request_kib")]
    pub max_request_kib: u64,
    /// The largest response body, in KiB. By default 8,192.
    #[serde(default = "default_response_kib")]
    pub max_response_kib: u64,
    /// Requests in flight at once from this host. By default 16; as many
    /// connections are kept open between requests.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// How long a connection is kept open for the next request after its
    /// last, in milliseconds; 0 opens a new one for every request. By
    /// default 30,000 (keep it under the upstream's own idle timeout; a
    /// kept connection the upstream closed anyway costs a reconnect, not
    /// an error).
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// The budget (a name under `[budgets]`) each request draws from. By
    /// default none. Several upstreams may share one.
    #[serde(default)]
    pub budget: Option<String>,
    /// How a request is counted against `budget`. By default `requests`.
    #[serde(default)]
    pub cost: UpstreamCost,
    /// Whether a request answered 429 or 503 may be sent again once the
    /// pause it asked for is over (idempotent requests, or an API that
    /// refuses before doing anything). By default false: the component gets
    /// the 429 or 503, with its `Retry-After`.
    #[serde(default)]
    pub retry: bool,
}

fn default_connect_ms() -> u64 {
    5_000
}
fn default_first_byte_ms() -> u64 {
    30_000
}
fn default_idle_ms() -> u64 {
    30_000
}
fn default_total_ms() -> u64 {
    60_000
}
fn default_request_kib() -> u64 {
    1024
}
fn default_response_kib() -> u64 {
    8192
}
fn default_concurrency() -> u32 {
    16
}

/// Where an injected header's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSource {
    /// The value itself (for headers that are not secret).
    #[serde(default)]
    pub value: Option<String>,
    /// An environment variable of the host holding it.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding it, trailing whitespace trimmed (what a mounted
    /// Kubernetes Secret provides).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Written before the value: `"Bearer "` for an `Authorization` header.
    #[serde(default)]
    pub prefix: String,
}

/// How an upstream request is counted in its budget's tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum UpstreamCost {
    /// One token per request sent.
    #[default]
    Requests,
    /// Tokens, as an LLM API counts them: `estimate` (a JSON Pointer into
    /// the request body, such as `/max_tokens`) plus one token per
    /// `prompt_bytes_per_token` bytes of the request body is reserved before
    /// the request is sent, and settled against `usage` (a JSON Pointer into
    /// the response body, such as `/usage/total_tokens`) when it returns:
    /// the difference is charged or refunded. A response without `usage`
    /// used nothing.
    Tokens {
        /// Where the request says how many tokens it may produce.
        estimate: String,
        /// Where the response says how many tokens it used.
        usage: String,
        /// Bytes of request body counted as one prompt token in the
        /// estimate; 0 counts none. By default 4.
        #[serde(default = "default_prompt_bytes")]
        prompt_bytes_per_token: u32,
    },
}

fn default_prompt_bytes() -> u32 {
    4
}

/// How a call's cost is counted, in its budget's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum CostRule {
    /// One token per call.
    Calls,
    /// One token per page handed to a page parser or chunker.
    Pages,
    /// One token per byte of a tool's JSON input.
    InputBytes,
    /// The number at this JSON Pointer in a tool's input (for example
    /// `{ field = "/max_tokens" }` for an LLM call), at least 1.
    Field(String),
}

/// How jobs are sorted into lanes, and each lane's size.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LanesConfig {
    /// Documents of at least this many pages go to the heavy lane. By
    /// default 200.
    pub heavy_from_pages: u32,
    /// The light lane. By default 1 worker of its own, 16 jobs running,
    /// 1024 waiting.
    pub light: LaneConfig,
    /// The heavy lane. By default `pipeline.workers` workers, 4 jobs
    /// running (taking turns batch by batch), 64 waiting.
    pub heavy: LaneConfig,
}

impl Default for LanesConfig {
    fn default() -> Self {
        LanesConfig {
            heavy_from_pages: 200,
            light: LaneConfig::default(),
            heavy: LaneConfig::default(),
        }
    }
}

/// One lane's size; unset fields take the lane's defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneConfig {
    /// Worker threads that serve this lane first. The light lane's are kept
    /// for light jobs while heavy work fills the cores.
    pub workers: Option<usize>,
    /// Jobs that take turns at once.
    pub running: Option<usize>,
    /// Jobs that may wait for a turn; past this, submissions are refused.
    pub queue: Option<usize>,
}

/// A token budget: `capacity` tokens per `period_secs`, at most `burst` at
/// once, refilled continuously.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Tokens per period. Required.
    pub capacity: u64,
    /// Tokens that may be drawn at once after a quiet spell. Required.
    pub burst: u64,
    /// The period, in seconds. By default 60.
    #[serde(default = "default_period")]
    pub period_secs: f64,
    /// Fraction of the rate and burst held for the light lane, so heavy
    /// work cannot drain what light work needs. By default 0.2.
    #[serde(default = "default_light_share")]
    pub light_share: f64,
}

fn default_period() -> f64 {
    60.0
}

fn default_light_share() -> f64 {
    0.2
}

/// What to do when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unreachable {
    /// Stop drawing: jobs wait, tool calls fail, readiness reports it.
    FailClosed,
    /// Draw from a bucket in this process holding `1 / redis.replicas` of
    /// each budget, until Redis answers again.
    Local,
}

/// Where shared state lives when several hosts share it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// A `redis://` URL. By default none: budgets and sessions live in this
    /// process.
    pub url: Option<String>,
    /// Prefix of every key warmlane writes. By default `warmlane`.
    pub key_prefix: String,
    /// Connect, read and write timeout, in milliseconds. By default 500.
    pub timeout_ms: u64,
    /// What to do when Redis cannot be reached. By default `fail-closed`.
    pub on_unreachable: Unreachable,
    /// Hosts sharing the budgets; the `local` policy gives each this share.
    /// By default 1.
    pub replicas: u32,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "warmlane".into(),
            timeout_ms: 500,
            on_unreachable: Unreachable::FailClosed,
            replicas: 1,
        }
    }
}

/// Components loaded from a directory.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// A directory of `*.wasm` components. Each must export one of the
    /// `warmlane:worker` interfaces; its file name (without `.wasm`) becomes
    /// its name. By default none.
    pub dir: Option<PathBuf>,
    /// Component files loaded besides those of `dir`, named the same way.
    /// By default none.
    pub files: Vec<PathBuf>,
    /// What a plugin that cannot be loaded does to the host's start. By
    /// default `refuse`.
    pub on_error: PluginErrors,
}

/// What a plugin that cannot be loaded (not a component, no warmlane
/// world, the wrong signatures, an import the host does not provide, a
/// failing `describe`, a name already taken) does to the host's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginErrors {
    /// The host does not start; the error names every plugin that failed
    /// and why.
    #[default]
    Refuse,
    /// The host starts without them, says so in its log, and names them and
    /// why in `/readyz` and `warmlane_plugin_skipped`.
    Skip,
}

/// Host-side session state.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Largest total size of one session's values, in bytes. By default 1 MiB.
    pub max_bytes: u64,
    /// Idle time after which a session is forgotten, in seconds. By default 3600.
    pub ttl_secs: u64,
    /// Tool calls a session's call log keeps, the last ones (`GET
    /// /v1/sessions/ID/calls`); 0 keeps none. By default 100.
    pub call_log: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_bytes: 1024 * 1024,
            ttl_secs: 3600,
            call_log: 100,
        }
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    fn validate_upstreams(&self) -> Result<()> {
        for (name, u) in &self.upstreams {
            if u.urls.is_empty() {
                bail!("[upstreams.{name}]: urls must name at least one base URL");
            }
            for url in &u.urls {
                let scheme = url.split_once("://").map(|(s, _)| s);
                match scheme {
                    Some("https") => {}
                    Some("http") if u.plain_http => {}
                    Some("http") => bail!(
                        "[upstreams.{name}]: {url} is plain http; set plain_http = true to send requests (and injected secrets) unencrypted"
                    ),
                    _ => bail!("[upstreams.{name}]: {url:?} is not an http:// or https:// URL"),
                }
            }
            for (header, source) in &u.headers {
                let given = [
                    source.value.is_some(),
                    source.env.is_some(),
                    source.file.is_some(),
                ];
                if given.iter().filter(|g| **g).count() != 1 {
                    bail!(
                        "[upstreams.{name}.headers.{header}]: give exactly one of value, env or file"
                    );
                }
            }
            for (key, value) in [
                ("connect_timeout_ms", u.connect_timeout_ms),
                ("first_byte_timeout_ms", u.first_byte_timeout_ms),
                ("total_timeout_ms", u.total_timeout_ms),
                ("max_request_kib", u.max_request_kib),
                ("max_response_kib", u.max_response_kib),
                ("concurrency", u64::from(u.concurrency)),
            ] {
                if value == 0 {
                    bail!("[upstreams.{name}]: {key} must be at least 1");
                }
            }
            match (&u.budget, &u.cost) {
                (Some(budget), _) if !self.budgets.contains_key(budget) => {
                    bail!("[upstreams.{name}]: budget `{budget}` is not defined under [budgets]")
                }
                (None, UpstreamCost::Tokens { .. }) => {
                    bail!("[upstreams.{name}]: a tokens cost needs a budget to draw from")
                }
                (
                    _,
                    UpstreamCost::Tokens {
                        estimate, usage, ..
                    },
                ) if !estimate.starts_with('/') || !usage.starts_with('/') => {
                    bail!(
                        "[upstreams.{name}]: estimate and usage must be JSON Pointers such as `/max_tokens`"
                    )
                }
                _ => {}
            }
        }
        for (component, o) in &self.components {
            for upstream in &o.upstreams {
                if !self.upstreams.contains_key(upstream) {
                    bail!(
                        "[components.{component}]: upstream `{upstream}` is not defined under [upstreams]"
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            bail!(
                "telemetry.otlp_endpoint must be an http:// address such as http://otel-collector:4318, not {endpoint:?} (https is not built in: send to a collector beside warmlane)"
            );
        }
        let p = &self.pipeline;
        if p.batch_pages == 0 {
            bail!("pipeline.batch_pages must be at least 1");
        }
        if p.chunk_size == 0 {
            bail!("pipeline.chunk_size must be at least 1");
        }
        for (key, value) in [
            ("memory_mib", p.memory_mib),
            ("cpu_ms_per_document", p.cpu_ms_per_document),
            ("page_retry_cpu_ms", p.page_retry_cpu_ms),
            ("chunk_input_kib", p.chunk_input_kib),
        ] {
            if value == 0 {
                bail!("pipeline.{key} must be at least 1");
            }
        }
        if p.chunk_overlap >= p.chunk_size {
            bail!(
                "pipeline.chunk_overlap ({}) must be smaller than chunk_size ({})",
                p.chunk_overlap,
                p.chunk_size
            );
        }
        for (name, b) in &self.budgets {
            if b.capacity == 0 || b.burst == 0 {
                bail!("[budgets.{name}]: capacity and burst must be at least 1");
            }
            if !(b.period_secs > 0.0 && b.period_secs.is_finite()) {
                bail!("[budgets.{name}]: period_secs must be a positive number of seconds");
            }
            if !(0.0..=0.9).contains(&b.light_share) {
                bail!(
                    "[budgets.{name}]: light_share must be between 0 and 0.9, not {}",
                    b.light_share
                );
            }
        }
        for (component, o) in &self.components {
            match (&o.budget, &o.cost) {
                (Some(budget), _) if !self.budgets.contains_key(budget) => bail!(
                    "[components.{component}]: budget `{budget}` is not defined under [budgets]"
                ),
                (None, Some(_)) => {
                    bail!("[components.{component}]: a cost needs a budget to draw from")
                }
                (_, Some(CostRule::Field(pointer))) if !pointer.starts_with('/') => bail!(
                    "[components.{component}]: cost field `{pointer}` must be a JSON Pointer such as `/max_tokens`"
                ),
                _ => {}
            }
        }
        self.validate_upstreams()?;
        if self.redis.replicas == 0 {
            bail!("redis.replicas must be at least 1");
        }
        if self.redis.timeout_ms == 0 {
            bail!("redis.timeout_ms must be at least 1");
        }
        if self.sessions.ttl_secs == 0 {
            bail!("sessions.ttl_secs must be at least 1: a session would be forgotten at once");
        }
        let server = &self.server;
        for (key, value) in [
            ("header_timeout_secs", server.header_timeout_secs),
            ("body_timeout_secs", server.body_timeout_secs),
            ("max_uploads", server.max_uploads as u64),
            ("max_request_kib", server.max_request_kib),
            ("max_upload_mib", server.max_upload_mib),
        ] {
            if value == 0 {
                bail!("server.{key} must be at least 1");
            }
        }
        if self.server.role != Role::All && self.redis.url.is_none() {
            bail!(
                "server.role = \"{}\" needs redis.url: replicas share their jobs through Redis",
                self.server.role.as_str()
            );
        }
        if self.server.lanes.is_empty() {
            bail!("server.lanes must name at least one lane: \"light\", \"heavy\"");
        }
        let j = &self.jobs;
        if j.lease_ms < 100 || j.max_attempts == 0 || j.window == 0 {
            bail!(
                "jobs.lease_ms must be at least 100, jobs.max_attempts and jobs.window at least 1"
            );
        }
        if self.server.mcp_allowed_hosts.is_empty() {
            bail!("server.mcp_allowed_hosts must name at least one host, or \"*\" for any");
        }
        let lanes = self.lane_settings();
        if lanes.heavy_from_pages == 0 {
            bail!("lanes.heavy_from_pages must be at least 1");
        }
        for (lane, l) in [("light", lanes.lanes[0]), ("heavy", lanes.lanes[1])] {
            if l.running == 0 {
                bail!("lanes.{lane}.running must be at least 1");
            }
        }
        if lanes.lanes[0].workers == 0 {
            bail!(
                "lanes.light.workers must be at least 1: the light lane keeps capacity of its own"
            );
        }
        let pdf = &self.pdf;
        for (key, value) in [
            ("max_stream_mib", pdf.max_stream_mib),
            ("max_inflate_ratio", pdf.max_inflate_ratio),
            ("max_document_inflate_mib", pdf.max_document_inflate_mib),
            ("max_page_text_mib", pdf.max_page_text_mib),
            ("max_page_operators", pdf.max_page_operators),
            ("max_batch_mib", pdf.max_batch_mib),
            ("max_pages", pdf.max_pages),
        ] {
            if value == 0 {
                bail!("pdf.{key} must be at least 1");
            }
            if key.ends_with("_mib") && value > (1 << 40) {
                bail!("pdf.{key} is too large: {value} MiB");
            }
        }
        if self.engine.tick_ms == 0 {
            bail!("engine.tick_ms must be at least 1");
        }
        for (name, limits) in std::iter::once(("instances", &self.instances)).chain(
            self.components
                .keys()
                .map(|k| (k.as_str(), &self.instances)),
        ) {
            let limits = if name == "instances" {
                limits.clone()
            } else {
                self.limits_for(name)
            };
            if limits.memory_mib == 0
                || limits.deadline_ms == 0
                || limits.cpu_ms == 0
                || limits.calls_per_instance == 0
                || limits.reuse_calls == 0
            {
                bail!(
                    "[{name}]: memory_mib, deadline_ms, cpu_ms, calls_per_instance and reuse_calls must be at least 1"
                );
            }
        }
        Ok(())
    }

    /// The lanes' sizes, with defaults resolved.
    pub(crate) fn lane_settings(&self) -> crate::lanes::Settings {
        use crate::lanes::{LaneSettings, Settings};
        let l = &self.lanes;
        let workers = self.pipeline.worker_count();
        Settings {
            heavy_from_pages: l.heavy_from_pages,
            parallelism: workers,
            window: 2 * workers,
            lanes: [
                LaneSettings {
                    workers: l.light.workers.unwrap_or(1),
                    running: l.light.running.unwrap_or(16),
                    queue: l.light.queue.unwrap_or(1024),
                },
                LaneSettings {
                    workers: l.heavy.workers.unwrap_or(workers),
                    running: l.heavy.running.unwrap_or(4),
                    queue: l.heavy.queue.unwrap_or(64),
                },
            ],
        }
    }

    /// The limits that apply to component `name`: its own overrides, then
    /// `pipeline.memory_mib` if it is the pipeline's parser or chunker, then
    /// `[instances]`.
    pub fn limits_for(&self, name: &str) -> InstanceConfig {
        let mut base = self.instances.clone();
        if name == self.pipeline.parser || name == self.pipeline.chunker {
            base.memory_mib = self.pipeline.memory_mib;
        }
        match self.components.get(name) {
            None => base,
            Some(o) => InstanceConfig {
                warm: o.warm.unwrap_or(base.warm),
                memory_mib: o.memory_mib.unwrap_or(base.memory_mib),
                deadline_ms: o.deadline_ms.unwrap_or(base.deadline_ms),
                cpu_ms: o.cpu_ms.unwrap_or(base.cpu_ms),
                calls_per_instance: o.calls_per_instance.unwrap_or(base.calls_per_instance),
                reuse_calls: o.reuse_calls.unwrap_or(base.reuse_calls),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.pipeline.batch_pages, 16);
        assert_eq!(c.instances, InstanceConfig::default());
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let text = include_str!("../../examples/warmlane.toml");
        let c = Config::from_toml(text).unwrap();
        let d = Config::default();
        assert_eq!(format!("{:?}", c.engine), format!("{:?}", d.engine));
        assert_eq!(format!("{:?}", c.pipeline), format!("{:?}", d.pipeline));
        assert_eq!(c.instances, d.instances);
        assert_eq!(format!("{:?}", c.sessions), format!("{:?}", d.sessions));
        assert_eq!(format!("{:?}", c.redis), format!("{:?}", d.redis));
        assert_eq!(format!("{:?}", c.server), format!("{:?}", d.server));
        assert_eq!(format!("{:?}", c.pdf), format!("{:?}", d.pdf));
        assert_eq!(format!("{:?}", c.jobs), format!("{:?}", d.jobs));
        assert_eq!(c.lane_settings(), d.lane_settings());
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        for (toml, named) in [
            ("[sessions]\nttl_secs = 0\n", "sessions.ttl_secs"),
            (
                "[server]\nmcp_allowed_hosts = []\n",
                "server.mcp_allowed_hosts",
            ),
        ] {
            let err = Config::from_toml(toml)
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(format!("{err:#}").contains(named), "{err:#}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::from_toml("[pipeline]\nbatch_size = 3\n").unwrap_err();
        assert!(format!("{err:#}").contains("batch_size"), "{err:#}");
    }

    #[test]
    fn overrides_apply_per_component() {
        let c = Config::from_toml("[instances]\nwarm = 3\n[components.notes]\nmemory_mib = 8\n")
            .unwrap();
        assert_eq!(c.limits_for("notes").memory_mib, 8);
        assert_eq!(c.limits_for("notes").warm, 3);
        assert_eq!(c.limits_for("text-stats").memory_mib, 256);
        // The pipeline's components take the pipeline's memory cap.
        assert_eq!(c.limits_for("chunker").memory_mib, 64);
        let c = Config::from_toml("[components.chunker]\nmemory_mib = 9\n").unwrap();
        assert_eq!(c.limits_for("chunker").memory_mib, 9);
    }

    #[test]
    fn nonsense_values_are_refused() {
        assert!(Config::from_toml("[pipeline]\nchunk_size = 10\nchunk_overlap = 10\n").is_err());
        assert!(Config::from_toml("[components.x]\ndeadline_ms = 0\n").is_err());
        assert!(Config::from_toml("[lanes.light]\nworkers = 0\n").is_err());
        assert!(
            Config::from_toml("[budgets.p]\ncapacity = 10\nburst = 1\nlight_share = 1.0\n")
                .is_err()
        );
    }

    #[test]
    fn budgets_and_costs_are_checked_against_each_other() {
        let ok = Config::from_toml(
            "[budgets.llm]\ncapacity = 90000\nburst = 10000\n\
             [components.notes]\nbudget = \"llm\"\ncost = { field = \"/max_tokens\" }\n",
        )
        .unwrap();
        let llm = &ok.budgets["llm"];
        assert_eq!((llm.period_secs, llm.light_share), (60.0, 0.2));
        assert_eq!(
            ok.components["notes"].cost,
            Some(CostRule::Field("/max_tokens".into()))
        );
        let err = Config::from_toml("[components.notes]\nbudget = \"nope\"\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("`nope` is not defined"),
            "{err:#}"
        );
        let err = Config::from_toml("[budgets.p]\ncapacity = 10\n").unwrap_err();
        assert!(format!("{err:#}").contains("burst"), "{err:#}");
        let err = Config::from_toml("[components.notes]\ncost = \"calls\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("needs a budget"), "{err:#}");
    }
}
