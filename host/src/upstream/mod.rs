//! Upstreams: the HTTP services components may call over `wasi:http`, as
//! configured under `[upstreams]` — where each is, the headers the host
//! injects (secrets the component never sees), its limits, the budget its
//! requests draw — and the figures of what was sent to each.
//!
//! The host is the one door to the outside world: a request goes out only
//! if its URL is one of the calling component's upstreams (`gate`), and
//! then only through [`Upstream::send`] (`exchange`).

mod exchange;
mod gate;
mod pool;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http::{HeaderName, HeaderValue, Uri};
use wasmtime_wasi_http::RequestOptions;

use crate::bucket::Budget;
use crate::config::{Config, HeaderSource, UpstreamConfig, UpstreamCost};
use crate::stats::{Histogram, Recorder};

pub(crate) use gate::{Gate, Traffic};

/// Requests refused before reaching an upstream, by component.
pub(crate) type Denied = Vec<(String, u64)>;

/// Every configured upstream, and the requests refused before reaching one.
#[derive(Default)]
pub(crate) struct Upstreams {
    by_name: BTreeMap<String, Arc<Upstream>>,
    /// Requests no upstream of the caller's matched, by component.
    denied: Mutex<BTreeMap<String, u64>>,
}

impl Upstreams {
    /// The upstreams of `config`, their secrets read now (a missing one
    /// stops the host from starting, naming it), drawing from `budgets`.
    pub(crate) fn new(config: &Config, budgets: &BTreeMap<String, Arc<Budget>>) -> Result<Self> {
        let by_name = config
            .upstreams
            .iter()
            .map(|(name, u)| {
                let budget = u.budget.as_ref().map(|b| budgets[b].clone());
                Ok((name.clone(), Arc::new(Upstream::new(name, u, budget)?)))
            })
            .collect::<Result<_>>()?;
        Ok(Upstreams {
            by_name,
            denied: Mutex::default(),
        })
    }

    /// The upstreams component `name` may call.
    pub(crate) fn granted(&self, names: &[String]) -> Arc<[Arc<Upstream>]> {
        names
            .iter()
            .filter_map(|n| self.by_name.get(n).cloned())
            .collect()
    }

    /// Counts a refused request of `component`'s.
    fn deny(&self, component: &str) {
        let mut denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        *denied.entry(component.to_string()).or_default() += 1;
    }

    /// Whether some upstream (granted or not) serves `uri`, and its name.
    fn serving(&self, uri: &Uri) -> Option<&str> {
        self.by_name
            .values()
            .find(|u| u.serves(uri))
            .map(|u| u.name.as_str())
    }

    /// Every upstream's figures, and the refusals by component.
    pub(crate) fn stats(&self) -> (Vec<UpstreamStats>, Denied) {
        let denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.by_name.values().map(|u| u.stats()).collect(),
            denied.iter().map(|(c, n)| (c.clone(), *n)).collect(),
        )
    }
}

/// One base URL: a request is the upstream's when it has this scheme,
/// host and port, and its path starts with `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Base {
    https: bool,
    host: String,
    port: u16,
    /// Without a trailing `/`; empty for the root.
    path: String,
}

impl Base {
    fn parse(url: &str) -> Result<Base> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url:?} is not an http:// or https:// URL"),
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            bail!("{url:?} names no host");
        };
        if uri.query().is_some() {
            bail!("{url:?} has a query; a base URL is a scheme, host, port and path");
        }
        Ok(Base {
            https,
            host: host.to_ascii_lowercase(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn serves(&self, uri: &Uri) -> bool {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path();
        // `/v1` serves `/v1` and `/v1/...`, not `/v10`; and no `..` may
        // climb out of it.
        let under = path
            .strip_prefix(self.path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let climbs = path.split('/').any(|s| s == ".." || s == "%2e%2e");
        https == self.https
            && port == self.port
            && uri
                .host()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && under
            && !climbs
    }
}

/// A header the host sets, and whether its value is a secret to keep from
/// the component.
struct Injected {
    name: HeaderName,
    value: HeaderValue,
    /// The secret part of the value (from `env` or `file`), redacted from
    /// whatever comes back.
    secret: Option<Vec<u8>>,
}

/// How a request is counted in its upstream's budget.
pub(crate) enum Counting {
    Requests,
    Tokens {
        estimate: String,
        usage: String,
        prompt_bytes_per_token: u64,
    },
}

/// One upstream, as configured, and its figures.
pub(crate) struct Upstream {
    name: String,
    bases: Vec<Base>,
    headers: Vec<Injected>,
    connect: Duration,
    first_byte: Duration,
    total: Duration,
    max_request: u64,
    max_response: u64,
    /// Requests in flight from this host.
    slots: tokio::sync::Semaphore,
    /// Its kept-alive connections.
    pool: pool::Pool,
    budget: Option<Arc<Budget>>,
    counting: Counting,
    retry: bool,
    counters: Counters,
}

impl Upstream {
    fn new(name: &str, config: &UpstreamConfig, budget: Option<Arc<Budget>>) -> Result<Upstream> {
        let context = || format!("[upstreams.{name}]");
        let bases = config
            .urls
            .iter()
            .map(|u| Base::parse(u))
            .collect::<Result<_>>()
            .with_context(context)?;
        let headers = config
            .headers
            .iter()
            .map(|(h, source)| injected(h, source))
            .collect::<Result<_>>()
            .with_context(context)?;
        let counting = match &config.cost {
            UpstreamCost::Requests => Counting::Requests,
            UpstreamCost::Tokens {
                estimate,
                usage,
                prompt_bytes_per_token,
            } => Counting::Tokens {
                estimate: estimate.clone(),
                usage: usage.clone(),
                prompt_bytes_per_token: u64::from(*prompt_bytes_per_token),
            },
        };
        Ok(Upstream {
            name: name.to_string(),
            bases,
            headers,
            connect: Duration::from_millis(config.connect_timeout_ms),
            first_byte: Duration::from_millis(config.first_byte_timeout_ms),
            total: Duration::from_millis(config.total_timeout_ms),
            max_request: config.max_request_kib << 10,
            max_response: config.max_response_kib << 10,
            slots: tokio::sync::Semaphore::new(config.concurrency as usize),
            pool: pool::Pool::new(
                Duration::from_millis(config.idle_timeout_ms),
                config.concurrency as usize,
            ),
            budget,
            counting,
            retry: config.retry,
            counters: Counters::default(),
        })
    }

    /// The upstream's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether `uri` is one of this upstream's.
    fn serves(&self, uri: &Uri) -> bool {
        self.bases.iter().any(|b| b.serves(uri))
    }

    /// `uri` addressed to the upstream by name (`http://NAME/path`, no
    /// port), as the URL under its first base URL it stands for: so a
    /// component need not know where its upstream is.
    fn by_name(&self, uri: &Uri) -> Option<Uri> {
        let named = uri.port().is_none()
            && uri
                .host()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.name));
        if !named {
            return None;
        }
        let base = &self.bases[0];
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let resolved = Uri::builder()
            .scheme(if base.https { "https" } else { "http" })
            .authority(format!("{}:{}", base.host, base.port))
            .path_and_query(format!("{}{path}", base.path))
            .build()
            .ok()?;
        self.serves(&resolved).then_some(resolved)
    }

    /// The timeouts a request gets: the configured ones, shortened by what
    /// the component asked for.
    fn options(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let shorter =
            |ours: Duration, theirs: Option<Duration>| Some(theirs.map_or(ours, |t| t.min(ours)));
        let asked = asked.unwrap_or_default();
        RequestOptions {
            connect_timeout: shorter(self.connect, asked.connect_timeout),
            first_byte_timeout: shorter(self.first_byte, asked.first_byte_timeout),
            between_bytes_timeout: shorter(self.first_byte, asked.between_bytes_timeout),
        }
    }

    fn stats(&self) -> UpstreamStats {
        let c = &self.counters;
        let responses = c.responses.lock().unwrap_or_else(|e| e.into_inner());
        UpstreamStats {
            name: self.name.clone(),
            responses: responses
                .iter()
                .map(|((component, status), n)| (component.clone(), status.clone(), *n))
                .collect(),
            sent_bytes: c.sent_bytes.load(Ordering::Relaxed),
            received_bytes: c.received_bytes.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            connections: self.pool.opened(),
            tokens_reserved: c.tokens_reserved.load(Ordering::Relaxed),
            tokens_used: c.tokens_used.load(Ordering::Relaxed),
            latency: c.latency.snapshot(),
        }
    }
}

/// The header `name` with its value read from `source`.
fn injected(name: &str, source: &HeaderSource) -> Result<Injected> {
    let header = HeaderName::try_from(name)
        .with_context(|| format!("headers: {name:?} is not a header name"))?;
    let (value, secret) = match (&source.value, &source.env, &source.file) {
        (Some(v), None, None) => (v.clone(), false),
        (None, Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => (v, true),
            _ => bail!(
                "headers.{name}: environment variable {var} is not set (it holds the header's value)"
            ),
        },
        (None, None, Some(path)) => {
            let v = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "headers.{name}: cannot read {} (it holds the header's value)",
                    path.display()
                )
            })?;
            let v = v.trim_end().to_string();
            if v.is_empty() {
                bail!("headers.{name}: {} is empty", path.display());
            }
            (v, true)
        }
        _ => bail!("headers.{name}: give exactly one of value, env or file"),
    };
    let mut full = HeaderValue::try_from(format!("{}{value}", source.prefix))
        .with_context(|| format!("headers.{name}: the value is not a valid header value"))?;
    full.set_sensitive(secret);
    Ok(Injected {
        name: header,
        value: full,
        secret: secret.then(|| value.into_bytes()),
    })
}

#[derive(Default)]
struct Counters {
    /// Responses (or failures, by kind) by component and status.
    responses: Mutex<BTreeMap<(String, String), u64>>,
    sent_bytes: AtomicU64,
    received_bytes: AtomicU64,
    retries: AtomicU64,
    tokens_reserved: AtomicU64,
    tokens_used: AtomicU64,
    latency: Recorder,
}

impl Counters {
    fn outcome(&self, component: &str, status: &str) {
        let mut r = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry((component.to_string(), status.to_string()))
            .or_default() += 1;
    }
}

/// An upstream's figures, for metrics.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamStats {
    pub(crate) name: String,
    /// Requests by component and outcome: an HTTP status, or how the
    /// request failed (`timeout`, `unreachable`, `too-large`, `budget`...).
    pub(crate) responses: Vec<(String, String, u64)>,
    pub(crate) sent_bytes: u64,
    pub(crate) received_bytes: u64,
    /// Requests sent again after a pause the upstream asked for.
    pub(crate) retries: u64,
    /// Connections opened (kept ones serve many requests).
    pub(crate) connections: u64,
    /// Tokens reserved on estimates (token-counted upstreams).
    pub(crate) tokens_reserved: u64,
    /// Tokens the upstream reported using, what the estimates settled to.
    pub(crate) tokens_used: u64,
    /// From the request's arrival at the host to its response's end.
    pub(crate) latency: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serves(base: &str, uri: &str) -> bool {
        Base::parse(base).unwrap().serves(&uri.parse().unwrap())
    }

    #[test]
    fn a_base_url_serves_its_own_scheme_host_port_and_path_only() {
        let base = "https://api.example.com/v1";
        assert!(serves(base, "https://api.example.com/v1/chat/completions"));
        assert!(serves(base, "https://API.example.com:443/v1"));
        assert!(!serves(base, "http://api.example.com/v1/chat"));
        assert!(!serves(base, "https://api.example.com:8443/v1/chat"));
        assert!(!serves(base, "https://api.example.com/v10/chat"));
        assert!(!serves(base, "https://api.example.com/v2/chat"));
        assert!(!serves(base, "https://api.example.com.evil.test/v1/chat"));
        assert!(!serves(base, "https://evil.test/api.example.com/v1"));
        assert!(!serves(base, "https://api.example.com/v1/../admin"));
        assert!(serves(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/x?y=1"
        ));
        assert!(!serves("http://127.0.0.1:8080", "http://localhost:8080/x"));
    }

    #[test]
    fn an_upstream_addressed_by_name_stands_for_its_first_base_url() {
        let config = Config::from_toml(
            "[upstreams.llm]\nurls = [\"http://127.0.0.1:9000/v1\", \"https://api.example.com/v1\"]\nplain_http = true\n",
        )
        .unwrap();
        let u = Upstream::new("llm", &config.upstreams["llm"], None).unwrap();
        let resolved = u
            .by_name(&"http://llm/chat/completions?x=1".parse().unwrap())
            .unwrap();
        assert_eq!(
            resolved.to_string(),
            "http://127.0.0.1:9000/v1/chat/completions?x=1"
        );
        assert!(u.serves(&"https://api.example.com/v1/models".parse().unwrap()));
        // Not by name with a port, nor another name, nor climbing out.
        assert!(u.by_name(&"http://llm:80/x".parse().unwrap()).is_none());
        assert!(u.by_name(&"http://llm2/x".parse().unwrap()).is_none());
        assert!(u.by_name(&"http://llm/../admin".parse().unwrap()).is_none());
    }

    #[test]
    fn a_secret_header_comes_from_the_environment_or_a_file_and_is_kept_secret() {
        let dir = std::env::temp_dir().join(format!("warmlane-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret-from-file\n").unwrap();
        let source = HeaderSource {
            value: None,
            env: None,
            file: Some(file.clone()),
            prefix: "Bearer ".into(),
        };
        let h = injected("Authorization", &source).unwrap();
        assert_eq!(h.value.to_str().unwrap(), "Bearer s3cret-from-file");
        assert!(h.value.is_sensitive());
        assert_eq!(h.secret.as_deref(), Some(&b"s3cret-from-file"[..]));
        let missing = HeaderSource {
            env: Some("WARMLANE_TEST_NO_SUCH_VARIABLE".into()),
            file: None,
            ..source
        };
        let e = injected("Authorization", &missing).err().unwrap();
        assert!(
            e.to_string()
                .contains("WARMLANE_TEST_NO_SUCH_VARIABLE is not set"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
