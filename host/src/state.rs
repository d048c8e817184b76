//! What the host keeps per instance: its WASI context (no files, network or
//! environment), its memory limiter, its captured stderr, and the session
//! and job it is bound to. Also the host side of the `session` and `log`
//! imports, which read that binding.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::tool::warmlane::worker::{log, session as wit_session};
use crate::meter::Meter;
use crate::session::{IncrementError, SessionBinding, StoreError, is_host_key};
use crate::stderr::Capture;
use crate::upstream::Gate;

/// How much of a guest's stderr is kept for error messages.
const STDERR_CAPTURE: usize = 4096;
/// Longest log line a guest may write.
const MAX_LOG_LINE: usize = 4096;

/// The data of one instance's `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: Capture,
    pub(crate) limiter: MemoryCap,
    /// What the current call may spend, and what it has.
    pub(crate) meter: Meter,
    pub(crate) component: Arc<str>,
    pub(crate) session: Option<SessionBinding>,
    /// Whether the current call asked for its session without having one.
    pub(crate) wanted_session: bool,
    pub(crate) job: Option<Arc<str>>,
    http: WasiHttpCtx,
    /// The door to the component's upstreams: `wasi:http`'s hooks.
    pub(crate) gate: Gate,
}

impl HostState {
    /// The state of an instance of `component` whose requests pass `gate`.
    pub(crate) fn new(
        component: Arc<str>,
        memory_cap: u64,
        tick: std::time::Duration,
        gate: Gate,
    ) -> Self {
        let stderr = Capture::new(STDERR_CAPTURE);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            limiter: MemoryCap {
                cap: memory_cap,
                hit: false,
                peak: 0,
            },
            meter: Meter::new(tick),
            component,
            session: None,
            wanted_session: false,
            job: None,
            http: WasiHttpCtx::new(),
            gate,
        }
    }

    /// What the guest wrote to stderr (a panic message, usually), trimmed.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.contents().trim().to_string()
    }

    /// Forgets what the guest wrote to stderr before (a new call begins).
    pub(crate) fn clear_stderr(&self) {
        self.stderr.clear();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// Caps linear memory; remembers whether the cap was hit so a trap that
/// follows can be reported as what it is.
pub(crate) struct MemoryCap {
    pub(crate) cap: u64,
    pub(crate) hit: bool,
    /// The largest linear memory the instance has asked for, in bytes.
    pub(crate) peak: u64,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Links WASI (sockets denied by policy, not by absence), `wasi:http`'s
/// outgoing requests (through each instance's [`Gate`]), and warmlane's own
/// imports.
pub(crate) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    wit_session::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

fn store_error(e: StoreError) -> wit_session::SessionError {
    match e {
        StoreError::NoSession => wit_session::SessionError::NoSession,
        StoreError::TooLarge(limit) => wit_session::SessionError::TooLarge(limit),
        StoreError::Unavailable(why) => wit_session::SessionError::Unavailable(why),
    }
}

/// What writing one of the host's own keys answers.
fn reserved() -> wit_session::SessionError {
    wit_session::SessionError::Unavailable(
        "keys starting with U+0000 are reserved for the host".into(),
    )
}

impl HostState {
    fn bound(&mut self) -> Result<&SessionBinding, wit_session::SessionError> {
        self.wanted_session |= self.session.is_none();
        self.session
            .as_ref()
            .ok_or(wit_session::SessionError::NoSession)
    }
}

/// The host's own keys are invisible to components: absent to `get` and
/// `delete`, refused by `set`, `compare-and-swap` and `increment`, left out
/// of `list-keys`.
impl wit_session::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit_session::SessionError> {
        let s = self.bound()?;
        if is_host_key(&key) {
            return Ok(None);
        }
        s.store.get(&s.id, &key).map_err(store_error)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), wit_session::SessionError> {
        let s = self.bound()?;
        if is_host_key(&key) {
            return Err(reserved());
        }
        s.store.set(&s.id, &key, value).map_err(store_error)
    }

    fn delete(&mut self, key: String) -> Result<bool, wit_session::SessionError> {
        let s = self.bound()?;
        if is_host_key(&key) {
            return Ok(false);
        }
        s.store.delete(&s.id, &key).map_err(store_error)
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, wit_session::SessionError> {
        let s = self.bound()?;
        if is_host_key(&key) {
            return Err(reserved());
        }
        s.store
            .compare_and_swap(&s.id, &key, expected.as_deref(), new)
            .map_err(store_error)
    }

    fn increment(&mut self, key: String, by: i64) -> Result<i64, wit_session::IncrementError> {
        let s = self.bound().map_err(wit_session::IncrementError::Session)?;
        if is_host_key(&key) {
            return Err(wit_session::IncrementError::Session(reserved()));
        }
        s.store.increment(&s.id, &key, by).map_err(|e| match e {
            IncrementError::Store(e) => wit_session::IncrementError::Session(store_error(e)),
            IncrementError::NotACounter => wit_session::IncrementError::NotACounter,
        })
    }

    fn list_keys(&mut self) -> Result<Vec<String>, wit_session::SessionError> {
        let s = self.bound()?;
        let mut keys = s.store.list_keys(&s.id).map_err(store_error)?;
        keys.retain(|k| !is_host_key(k));
        Ok(keys)
    }
}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            message.truncate(message.floor_char_boundary(MAX_LOG_LINE));
            message.push('…');
        }
        let component = &*self.component;
        let session = self.session.as_ref().map(|s| s.id.as_str()).unwrap_or("");
        let job = self.job.as_deref().unwrap_or("");
        match level {
            log::Level::Debug => tracing::debug!(component, session, job, "{message}"),
            log::Level::Info => tracing::info!(component, session, job, "{message}"),
            log::Level::Warn => tracing::warn!(component, session, job, "{message}"),
            log::Level::Error => tracing::error!(component, session, job, "{message}"),
        }
    }
}
