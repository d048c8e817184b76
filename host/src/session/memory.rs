//! Sessions in this process's memory: the embedded default.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{CallRecord, IncrementError, SessionId, SessionStore, StoreError, Usage, counter};

struct Entry {
    values: BTreeMap<String, Vec<u8>>,
    /// Keys and values, in bytes.
    bytes: u64,
    touched: Instant,
    usage: Usage,
    /// The last calls, oldest first.
    calls: VecDeque<CallRecord>,
}

impl Entry {
    /// Stores `value` under `key` if the session stays within `limit` bytes.
    fn put(&mut self, key: &str, value: Vec<u8>, limit: u64) -> Result<(), StoreError> {
        let old = self
            .values
            .get(key)
            .map_or(0, |v| (key.len() + v.len()) as u64);
        let total = self.bytes - old + (key.len() + value.len()) as u64;
        if total > limit {
            return Err(StoreError::TooLarge(limit));
        }
        self.bytes = total;
        self.values.insert(key.to_string(), value);
        Ok(())
    }

    /// Removes `key`; whether it was there.
    fn remove(&mut self, key: &str) -> bool {
        match self.values.remove(key) {
            Some(v) => {
                self.bytes -= (key.len() + v.len()) as u64;
                true
            }
            None => false,
        }
    }
}

struct Sessions {
    map: HashMap<SessionId, Entry>,
    /// Operations since expired sessions were last swept out.
    since_sweep: u32,
}

/// Sessions in this process's memory.
pub struct MemorySessionStore {
    sessions: Mutex<Sessions>,
    max_bytes: u64,
    ttl: Duration,
    call_log: usize,
}

/// Operations between sweeps of expired sessions.
const SWEEP_EVERY: u32 = 1024;

impl MemorySessionStore {
    /// A store whose sessions hold at most `max_bytes` (keys and values),
    /// keep their last `call_log` calls, and are forgotten after `ttl`
    /// without use.
    pub fn new(max_bytes: u64, ttl: Duration, call_log: usize) -> Self {
        MemorySessionStore {
            sessions: Mutex::new(Sessions {
                map: HashMap::new(),
                since_sweep: 0,
            }),
            max_bytes,
            ttl,
            call_log,
        }
    }

    /// Runs `f` on the live sessions, after forgetting expired ones (the one
    /// asked for at once, the others every so often).
    fn with<R>(&self, id: &SessionId, f: impl FnOnce(&mut HashMap<SessionId, Entry>) -> R) -> R {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let ttl = self.ttl;
        s.since_sweep += 1;
        if s.since_sweep >= SWEEP_EVERY {
            s.since_sweep = 0;
            s.map.retain(|_, e| now.duration_since(e.touched) < ttl);
        } else if s
            .map
            .get(id)
            .is_some_and(|e| now.duration_since(e.touched) >= ttl)
        {
            s.map.remove(id);
        }
        f(&mut s.map)
    }

    /// Runs `f` on session `id`, touching it; `NoSession` if there is none.
    fn entry<R>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut Entry) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(id, |map| {
            let e = map.get_mut(id).ok_or(StoreError::NoSession)?;
            e.touched = Instant::now();
            f(e)
        })
    }
}

impl SessionStore for MemorySessionStore {
    fn create(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.with(id, |map| {
            let now = Instant::now();
            let mut created = false;
            map.entry(id.clone())
                .or_insert_with(|| {
                    created = true;
                    Entry {
                        values: BTreeMap::new(),
                        bytes: 0,
                        touched: now,
                        usage: Usage::default(),
                        calls: VecDeque::new(),
                    }
                })
                .touched = now;
            created
        }))
    }

    fn exists(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.with(id, |map| map.contains_key(id)))
    }

    fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(self.with(id, |map| map.remove(id).is_some()))
    }

    fn get(&self, session: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.entry(session, |e| Ok(e.values.get(key).cloned()))
    }

    fn set(&self, session: &SessionId, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let limit = self.max_bytes;
        self.entry(session, |e| e.put(key, value, limit))
    }

    fn delete(&self, session: &SessionId, key: &str) -> Result<bool, StoreError> {
        self.entry(session, |e| Ok(e.remove(key)))
    }

    fn compare_and_swap(
        &self,
        session: &SessionId,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let limit = self.max_bytes;
        self.entry(session, |e| {
            if e.values.get(key).map(Vec::as_slice) != expected {
                return Ok(false);
            }
            match new {
                Some(value) => e.put(key, value, limit)?,
                None => {
                    e.remove(key);
                }
            }
            Ok(true)
        })
    }

    fn increment(&self, session: &SessionId, key: &str, by: i64) -> Result<i64, IncrementError> {
        let limit = self.max_bytes;
        self.entry(session, |e| {
            let now = e.values.get(key).map_or(Some(0), |v| counter(v));
            let Some(n) = now.and_then(|n| n.checked_add(by)) else {
                return Ok(None);
            };
            e.put(key, n.to_string().into_bytes(), limit)?;
            Ok(Some(n))
        })?
        .ok_or(IncrementError::NotACounter)
    }

    fn list_keys(&self, session: &SessionId) -> Result<Vec<String>, StoreError> {
        self.entry(session, |e| Ok(e.values.keys().cloned().collect()))
    }

    fn record(&self, session: &SessionId, call: &CallRecord) -> Result<(), StoreError> {
        let keep = self.call_log;
        self.entry(session, |e| {
            let usage = call.usage();
            e.usage.calls += usage.calls;
            e.usage.micros += usage.micros;
            e.usage.cpu_nanos += usage.cpu_nanos;
            e.usage.tokens += usage.tokens;
            e.usage.requests += usage.requests;
            e.calls.push_back(call.clone());
            while e.calls.len() > keep {
                e.calls.pop_front();
            }
            Ok(())
        })
    }

    fn usage(&self, session: &SessionId) -> Result<Usage, StoreError> {
        self.entry(session, |e| Ok(e.usage))
    }

    fn calls(&self, session: &SessionId, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.entry(session, |e| {
            let skip = e.calls.len().saturating_sub(limit);
            Ok(e.calls.iter().skip(skip).cloned().collect())
        })
    }
}
