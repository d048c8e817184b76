//! Measures three ways to serve one small call on a built-in component, for
//! the `cold_start` benchmark: (a) take a warm instance from its pool, (b)
//! instantiate from `InstancePre` per request (the model of `wasmtime serve`
//! and Spin), (c) compile from bytes, instantiate, and call.
//!
//! Not part of the supported API.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use lopdf::{Document, Object, Stream, dictionary};
use wasmtime::Store;
use wasmtime::component::Component;

use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker::{Options, PageText, SizeUnit};
use crate::bindings::parser::PageParserComponent;
use crate::bindings::tool::ToolComponent;
use crate::host::{BUILTINS, Host};
use crate::pool::{Pool, World};
use crate::state::HostState;

/// How an instance is had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// (a) From the warm pool.
    Warm,
    /// (b) Instantiated from `InstancePre` for this call.
    InstancePre,
    /// (c) Compiled from bytes for this call.
    Compile,
}

/// The trivial call each world gets.
trait Trivial: World {
    fn trivial(&self, store: &mut Store<HostState>, fixture: &Fixture) -> wasmtime::Result<()>;
}

/// Inputs for the trivial calls.
struct Fixture {
    pdf: Vec<u8>,
    page: Vec<PageText>,
}

impl Trivial for PageParserComponent {
    fn trivial(&self, store: &mut Store<HostState>, f: &Fixture) -> wasmtime::Result<()> {
        let pages = self
            .warmlane_worker_page_parser()
            .call_parse(store, &f.pdf, 1)?;
        pages.map(drop).map_err(wasmtime::Error::msg)
    }
}

impl Trivial for ChunkerComponent {
    fn trivial(&self, store: &mut Store<HostState>, f: &Fixture) -> wasmtime::Result<()> {
        let options = Options {
            max_size: 64,
            overlap: 8,
            unit: SizeUnit::Characters,
        };
        self.warmlane_worker_chunker()
            .call_split(store, &f.page, options)?
            .map(drop)
            .map_err(wasmtime::Error::msg)
    }
}

impl Trivial for ToolComponent {
    fn trivial(&self, store: &mut Store<HostState>, _: &Fixture) -> wasmtime::Result<()> {
        self.warmlane_worker_tool().call_describe(store).map(drop)
    }
}

/// Serves trivial calls on one built-in component, three ways.
pub struct ColdStart<'h> {
    host: &'h Host,
    name: String,
    bytes: &'static [u8],
    fixture: Fixture,
}

impl<'h> ColdStart<'h> {
    /// Prepares to measure built-in component `name`.
    pub fn new(host: &'h Host, name: &str) -> Result<Self> {
        let bytes = BUILTINS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, b, _)| *b)
            .ok_or_else(|| anyhow!("no built-in `{name}`"))?;
        let fixture = Fixture {
            pdf: one_page_pdf()?,
            page: vec![PageText {
                number: 1,
                offset: 0,
                text: "Hello, warm world. A short page.".into(),
            }],
        };
        Ok(ColdStart {
            host,
            name: name.to_string(),
            bytes,
            fixture,
        })
    }

    /// Serves one call the given way; returns the time it took.
    ///
    /// For [`Way::Warm`] that is taking the instance and calling it: the
    /// wait for the pool to be warm is not timed, and neither is handing the
    /// used instance back (see [`ColdStart::hand_back`]), which happens
    /// after the caller has its answer. The other ways include dropping
    /// their store, as a per-request host must.
    pub fn serve(&self, way: Way) -> Result<Duration> {
        self.serve_timed(way).map(|(call, _)| call)
    }

    /// Serves one call from the warm pool and returns how long handing the
    /// used instance back to the pool took.
    pub fn hand_back(&self) -> Result<Duration> {
        self.serve_timed(Way::Warm).map(|(_, back)| back)
    }

    fn serve_timed(&self, way: Way) -> Result<(Duration, Duration)> {
        let host = self.host;
        if let Some(pool) = host.parsers.get(&self.name) {
            self.serve_on(pool, way)
        } else if let Some(pool) = host.chunkers.get(&self.name) {
            self.serve_on(pool, way)
        } else if let Some(tool) = host.tools.values().find(|t| t.info.component == self.name) {
            self.serve_on(tool.pool(), way)
        } else {
            Err(anyhow!("component `{}` is not loaded", self.name))
        }
    }

    /// A fresh store, as a per-request host would make one.
    fn store(&self) -> Store<HostState> {
        let mut store = Store::new(
            &self.host.engine.engine,
            HostState::new(
                self.name.as_str().into(),
                256 << 20,
                Duration::from_millis(5),
                crate::upstream::Gate::closed(),
            ),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    fn serve_on<W: Trivial>(&self, pool: &Pool<W>, way: Way) -> Result<(Duration, Duration)> {
        let engine = &self.host.engine.engine;
        let f = &self.fixture;
        match way {
            Way::Warm => {
                pool.wait_warm(Duration::from_secs(10));
                let start = Instant::now();
                let mut lease = pool.take(None, None)?;
                lease.call(|w, s| w.trivial(s, f))?;
                let served = start.elapsed();
                drop(lease);
                Ok((served, start.elapsed() - served))
            }
            Way::InstancePre => {
                let start = Instant::now();
                let mut store = self.store();
                let world = W::instantiate(pool.pre(), &mut store).map_err(anyhow::Error::from)?;
                world.trivial(&mut store, f).map_err(anyhow::Error::from)?;
                drop(store);
                Ok((start.elapsed(), Duration::ZERO))
            }
            Way::Compile => {
                let start = Instant::now();
                let component = Component::new(engine, self.bytes).map_err(anyhow::Error::from)?;
                let pre = self
                    .host
                    .linker
                    .instantiate_pre(&component)
                    .map_err(anyhow::Error::from)?;
                let pre = W::pre(pre).map_err(anyhow::Error::from)?;
                let mut store = self.store();
                let world = W::instantiate(&pre, &mut store).map_err(anyhow::Error::from)?;
                world.trivial(&mut store, f).map_err(anyhow::Error::from)?;
                drop(store);
                Ok((start.elapsed(), Duration::ZERO))
            }
        }
    }
}

/// A one-page PDF with one line of Helvetica.
fn one_page_pdf() -> Result<Vec<u8>> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(
        dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" },
    );
    let content = doc.add_object(Stream::new(
        dictionary! {},
        b"BT /F1 12 Tf 72 720 Td (Hello, warm world.) Tj ET".to_vec(),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
        ),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).context("write the one-page PDF")?;
    Ok(out)
}
