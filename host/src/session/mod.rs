//! Session state kept in the host, so component instances stay disposable.
//!
//! The `session` capability: a [`SessionStore`] trait with two backends —
//! in memory (the embedded default) and Redis (one key per session) — held
//! to one test suite, and the host side of the `warmlane:worker/session`
//! import, which scopes every key to the session the instance was bound to
//! when it was taken from its pool. A component never names a session
//! itself. Sessions exist from [`SessionStore::create`] until they are
//! removed or go unused for their time to live.

mod memory;
mod redis;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use memory::MemorySessionStore;
pub use redis::RedisSessionStore;

/// A session's identity: what clients pass to continue a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) String);

impl SessionId {
    /// Checks and wraps a client-supplied id: 1 to 128 characters of
    /// `[A-Za-z0-9_-]`.
    pub fn parse(id: &str) -> Result<SessionId, String> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "session id `{id}` must be 1 to 128 characters of letters, digits, `-` and `_`"
            ));
        }
        Ok(SessionId(id.to_string()))
    }

    /// A new id of 128 bits from the operating system's random source, so
    /// ids cannot be guessed.
    pub fn random() -> SessionId {
        let mut bytes = [0u8; 16];
        // The OS source failing is not something a caller can handle; the
        // fallback still never repeats within a process.
        if getrandom::fill(&mut bytes).is_err() {
            use std::hash::{BuildHasher, Hasher};
            use std::sync::atomic::{AtomicU64, Ordering};
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            for half in bytes.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
                half.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        SessionId(format!("s-{hex}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No such session: never created, removed, or expired.
    NoSession,
    /// The session would grow past its size limit (in bytes).
    TooLarge(u64),
    /// The backend could not be reached.
    Unavailable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoSession => {
                f.write_str("no such session (never created, deleted, or expired)")
            }
            StoreError::TooLarge(limit) => {
                write!(f, "the session would grow past its limit of {limit} bytes")
            }
            StoreError::Unavailable(why) => write!(f, "the session store is unavailable: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Why [`SessionStore::increment`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrementError {
    /// The store failed as in any other operation.
    Store(StoreError),
    /// The value under the key is not the decimal text of an `i64`, or the
    /// sum would overflow one; the value is left as it was.
    NotACounter,
}

impl From<StoreError> for IncrementError {
    fn from(e: StoreError) -> Self {
        IncrementError::Store(e)
    }
}

/// The counter `value` holds: the canonical decimal text of an `i64` (no
/// sign but `-`, no leading zeros, nothing around it), as Redis's
/// `HINCRBY` reads it, so both stores agree on what a counter is.
pub(crate) fn counter(value: &[u8]) -> Option<i64> {
    let n: i64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == value).then_some(n)
}

/// What a session's calls have cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tool calls made in the session.
    pub calls: u64,
    /// Their wall-clock time, in microseconds.
    pub micros: u64,
    /// CPU time they used on the thread that ran them (the component and
    /// the host work it asked for), in nanoseconds.
    pub cpu_nanos: u64,
    /// Budget tokens they drew, their upstream requests' included.
    pub tokens: u64,
    /// Requests they sent to upstreams.
    pub requests: u64,
}

/// One tool call made in a session, as the session's call log keeps it:
/// what an agent did, without a tracing backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The tool called.
    pub tool: String,
    /// When the call started, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Its wall-clock time, in microseconds.
    pub micros: u64,
    /// CPU time it used on the thread that ran it, in nanoseconds.
    pub cpu_nanos: u64,
    /// Budget tokens it drew, its upstream requests' included.
    pub tokens: u64,
    /// Requests it sent to upstreams.
    #[serde(default)]
    pub requests: u64,
    /// The error it ended with (its first [`CallRecord::ERROR_BYTES`]
    /// bytes); `None` if it succeeded.
    pub error: Option<String>,
}

impl CallRecord {
    /// The most of an error's text a record keeps.
    pub const ERROR_BYTES: usize = 512;

    /// What the call adds to its session's usage.
    pub fn usage(&self) -> Usage {
        Usage {
            calls: 1,
            micros: self.micros,
            cpu_nanos: self.cpu_nanos,
            tokens: self.tokens,
            requests: self.requests,
        }
    }

    /// `error` cut to [`CallRecord::ERROR_BYTES`], on a character boundary.
    pub fn error_text(error: &str) -> String {
        error[..error.floor_char_boundary(Self::ERROR_BYTES)].to_string()
    }
}

/// Where sessions live. Implementations must be safe to share between
/// threads, scope every key to its session, refuse to grow a session past
/// its size limit, keep the session's last calls (as many as the store was
/// told to) beside its values and outside its size limit, and forget a
/// session left unused for its time to live.
pub trait SessionStore: Send + Sync + 'static {
    /// Creates session `id`; false if it already existed (it is then only
    /// touched).
    fn create(&self, id: &SessionId) -> Result<bool, StoreError>;
    /// Whether session `id` exists.
    fn exists(&self, id: &SessionId) -> Result<bool, StoreError>;
    /// Removes session `id` and everything in it; whether it existed.
    fn remove(&self, id: &SessionId) -> Result<bool, StoreError>;
    /// The value under `key`, if any.
    fn get(&self, session: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`.
    fn set(&self, session: &SessionId, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Removes `key`; whether it was there.
    fn delete(&self, session: &SessionId, key: &str) -> Result<bool, StoreError>;
    /// The session's keys in lexicographic order.
    fn list_keys(&self, session: &SessionId) -> Result<Vec<String>, StoreError>;
    /// In one atomic step: if `key` holds `expected` (`None`: absent),
    /// stores `new` (`None`: removes the key); whether it did.
    fn compare_and_swap(
        &self,
        session: &SessionId,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;
    /// In one atomic step: adds `by` to the [counter](counter) under `key`
    /// (absent counts as 0) and returns its new value.
    fn increment(&self, session: &SessionId, key: &str, by: i64) -> Result<i64, IncrementError>;
    /// Adds one call's cost to the session's usage and the call to its log.
    fn record(&self, session: &SessionId, call: &CallRecord) -> Result<(), StoreError>;
    /// The session's usage so far.
    fn usage(&self, session: &SessionId) -> Result<Usage, StoreError>;
    /// The session's last `limit` calls (at most as many as the log keeps),
    /// oldest first.
    fn calls(&self, session: &SessionId, limit: usize) -> Result<Vec<CallRecord>, StoreError>;
}

/// Keys that start with this belong to the host, not to the tools (an MCP
/// session keeps its handshake under one): components can neither see nor
/// touch them, and the API does not list them.
pub(crate) const HOST_KEY_PREFIX: &str = "\u{0}host/";

/// Whether `key` is the host's (see [`HOST_KEY_PREFIX`]).
pub(crate) fn is_host_key(key: &str) -> bool {
    key.starts_with(HOST_KEY_PREFIX)
}

/// The session an instance serves, bound when it is taken from its pool.
#[derive(Clone)]
pub(crate) struct SessionBinding {
    pub(crate) id: SessionId,
    pub(crate) store: Arc<dyn SessionStore>,
}

#[cfg(test)]
mod tests;
