//! Session state kept in the host, so component instances stay disposable.
//!
//! The `session` capability: a [`SessionStore`] trait with an in-memory
//! backend, and the host side of the `warmlane:worker/session` import, which
//! scopes every key to the session the instance was bound to when it was
//! taken from its pool. A component never names a session itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session's identity: what clients pass to continue a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

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

    /// A new random id.
    pub fn random() -> SessionId {
        use std::hash::{BuildHasher, Hasher};
        let mut out = String::from("s-");
        for _ in 0..2 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(Instant::now().elapsed().as_nanos());
            out.push_str(&format!("{:016x}", h.finish()));
        }
        SessionId(out)
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
    /// The session would grow past its size limit (in bytes).
    TooLarge(u64),
    /// The backend could not be reached.
    Unavailable(String),
}

/// Where sessions live. Implementations must be safe to share between
/// threads and must scope every key to its session.
pub trait SessionStore: Send + Sync + 'static {
    /// The value under `key`, if any.
    fn get(&self, session: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`.
    fn set(&self, session: &SessionId, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Removes `key`; whether it was there.
    fn delete(&self, session: &SessionId, key: &str) -> Result<bool, StoreError>;
    /// The session's keys in lexicographic order.
    fn list_keys(&self, session: &SessionId) -> Result<Vec<String>, StoreError>;
}

#[derive(Default)]
struct Entry {
    values: BTreeMap<String, Vec<u8>>,
    bytes: u64,
    touched: Option<Instant>,
}

/// Sessions in this process's memory: the embedded default.
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<SessionId, Entry>>,
    max_bytes: u64,
    ttl: Duration,
}

impl MemorySessionStore {
    /// A store whose sessions hold at most `max_bytes` (keys and values) and
    /// are forgotten after `ttl` without use.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        MemorySessionStore {
            sessions: Mutex::new(HashMap::new()),
            max_bytes,
            ttl,
        }
    }

    fn with<R>(&self, session: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, e| e.touched.is_none_or(|t| now.duration_since(t) < self.ttl));
        let entry = sessions.entry(session.clone()).or_default();
        entry.touched = Some(now);
        f(entry)
    }
}

impl SessionStore for MemorySessionStore {
    fn get(&self, session: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(session, |e| e.values.get(key).cloned()))
    }

    fn set(&self, session: &SessionId, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let limit = self.max_bytes;
        self.with(session, |e| {
            let old = e
                .values
                .get(key)
                .map_or(0, |v| (key.len() + v.len()) as u64);
            let new = (key.len() + value.len()) as u64;
            let total = e.bytes - old + new;
            if total > limit {
                return Err(StoreError::TooLarge(limit));
            }
            e.bytes = total;
            e.values.insert(key.to_string(), value);
            Ok(())
        })
    }

    fn delete(&self, session: &SessionId, key: &str) -> Result<bool, StoreError> {
        Ok(self.with(session, |e| match e.values.remove(key) {
            Some(v) => {
                e.bytes -= (key.len() + v.len()) as u64;
                true
            }
            None => false,
        }))
    }

    fn list_keys(&self, session: &SessionId) -> Result<Vec<String>, StoreError> {
        Ok(self.with(session, |e| e.values.keys().cloned().collect()))
    }
}

/// The session an instance serves, bound when it is taken from its pool.
#[derive(Clone)]
pub(crate) struct SessionBinding {
    pub(crate) id: SessionId,
    pub(crate) store: Arc<dyn SessionStore>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    #[test]
    fn keys_are_scoped_per_session() {
        let store = MemorySessionStore::new(1024, Duration::from_secs(60));
        store.set(&id("a"), "k", b"1".to_vec()).unwrap();
        store.set(&id("b"), "k", b"2".to_vec()).unwrap();
        assert_eq!(store.get(&id("a"), "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.list_keys(&id("b")).unwrap(), vec!["k".to_string()]);
        assert!(store.delete(&id("a"), "k").unwrap());
        assert!(!store.delete(&id("a"), "k").unwrap());
    }

    #[test]
    fn size_limit_is_enforced_and_replacing_frees_space() {
        let store = MemorySessionStore::new(10, Duration::from_secs(60));
        store.set(&id("a"), "k", vec![0; 8]).unwrap();
        assert_eq!(
            store.set(&id("a"), "j", vec![0; 8]),
            Err(StoreError::TooLarge(10))
        );
        store.set(&id("a"), "k", vec![0; 9]).unwrap();
    }

    #[test]
    fn idle_sessions_expire() {
        let store = MemorySessionStore::new(100, Duration::from_millis(1));
        store.set(&id("a"), "k", b"v".to_vec()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get(&id("a"), "k").unwrap(), None);
    }

    #[test]
    fn ids_are_checked() {
        assert!(SessionId::parse("ok-id_1").is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("no spaces").is_err());
        assert_ne!(SessionId::random(), SessionId::random());
    }
}
