//! The gate each instance's outgoing requests pass: `wasi:http`'s hooks,
//! which let a request through only to one of the component's upstreams,
//! attributed to the call it serves.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use tracing::Instrument;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::exchange::Exchange;
use super::{Upstream, Upstreams};
use crate::lanes::Lane;

/// The response future `wasi:http` expects of a hook.
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// What one call sent upstream, for its session's usage.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Requests sent (retries included).
    pub(crate) requests: AtomicU64,
    /// Budget tokens they drew, as settled.
    pub(crate) tokens: AtomicU64,
}

/// One instance's door to its upstreams; cloned from its pool's for each
/// new instance.
#[derive(Clone)]
pub(crate) struct Gate {
    all: Arc<Upstreams>,
    granted: Arc<[Arc<Upstream>]>,
    component: Arc<str>,
    /// The call being served: who it is for, its lane, its deadline.
    pub(crate) call: Call,
}

/// The call an instance is serving, as its requests are attributed.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) session: Option<Arc<str>>,
    pub(crate) job: Option<Arc<str>>,
    pub(crate) lane: Lane,
    pub(crate) deadline: Instant,
    /// Where the call's requests are counted, if its caller counts them.
    pub(crate) traffic: Option<Arc<Traffic>>,
}

impl Default for Call {
    fn default() -> Self {
        Call {
            session: None,
            job: None,
            lane: Lane::Light,
            deadline: Instant::now(),
            traffic: None,
        }
    }
}

impl Gate {
    /// The gate of an instance of `component`, which may call `granted`.
    pub(crate) fn new(
        all: Arc<Upstreams>,
        granted: Arc<[Arc<Upstream>]>,
        component: Arc<str>,
    ) -> Gate {
        Gate {
            all,
            granted,
            component,
            call: Call::default(),
        }
    }

    /// Binds the gate to a new call for `session` and `job`. A gate with no
    /// upstreams has nothing to attribute, and costs the call nothing.
    pub(crate) fn bind(&mut self, session: Option<&str>, job: Option<&Arc<str>>) {
        if self.granted.is_empty() {
            return;
        }
        self.call = Call {
            session: session.map(Into::into),
            job: job.cloned(),
            ..Call::default()
        };
    }

    /// A gate that lets nothing through (instances made to check a
    /// component, not to serve calls).
    pub(crate) fn closed() -> Gate {
        Gate::new(Arc::default(), Arc::new([]), "".into())
    }
}

impl WasiHttpHooks for Gate {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let uri = request.uri().clone();
        let component = &*self.component;
        let session = self.call.session.as_deref().unwrap_or("");
        let job = self.call.job.as_deref().unwrap_or("");
        let found = self.granted.iter().find_map(|u| {
            if u.serves(&uri) {
                Some((u.clone(), None))
            } else {
                u.by_name(&uri).map(|resolved| (u.clone(), Some(resolved)))
            }
        });
        let Some((upstream, resolved)) = found else {
            self.all.deny(component);
            // Say why in the log, never the query (it may carry a key).
            let target = format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map_or("", |a| a.as_str()),
                uri.path()
            );
            match self.all.serving(&uri) {
                Some(upstream) => tracing::warn!(
                    component,
                    session,
                    job,
                    upstream,
                    target,
                    "request denied: upstream `{upstream}` is not one of the component's (components.{component}.upstreams)"
                ),
                None => tracing::warn!(
                    component,
                    session,
                    job,
                    target,
                    "request denied: no upstream is configured for this URL"
                ),
            }
            return Box::new(async { Err(Error::HttpRequestDenied) });
        };
        if let Some(resolved) = resolved {
            if let Some(authority) = resolved.authority()
                && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
            {
                request.headers_mut().insert(http::header::HOST, host);
            }
            *request.uri_mut() = resolved;
        }
        let span = tracing::info_span!(
            "upstream",
            otel.name = %format_args!("{} {}", request.method(), upstream.name()),
            upstream = upstream.name(),
            component,
            session,
            job,
            method = %request.method(),
            path = uri.path(),
            status = tracing::field::Empty,
            retries = tracing::field::Empty,
            tokens = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let exchange = Exchange {
            upstream,
            component: self.component.clone(),
            lane: self.call.lane,
            deadline: self.call.deadline,
            traffic: self.call.traffic.clone(),
            span: span.clone(),
        };
        Box::new(exchange.run(request, options).instrument(span))
    }
}
