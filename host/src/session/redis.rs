//! Sessions in Redis: one hash per session under its own hash tag (values,
//! usage and the call log), with a time to live renewed on every use,
//! changed only by `session.lua` so the size limit holds under concurrent
//! writers.

use std::time::Duration;

use redis::{Script, Value};

use super::{CallRecord, IncrementError, SessionId, SessionStore, StoreError, Usage};
use crate::redis_conn::Connections;

/// Sessions kept in Redis, shared by every host that points at it.
pub struct RedisSessionStore {
    connections: Connections,
    prefix: String,
    script: Script,
    max_bytes: u64,
    ttl: Duration,
    call_log: usize,
}

impl RedisSessionStore {
    /// A store at `url` with keys under `prefix`, whose sessions hold at
    /// most `max_bytes` (keys and values), keep their last `call_log`
    /// calls, and are forgotten after `ttl` without use. Does not connect
    /// yet.
    pub fn new(
        url: &str,
        prefix: &str,
        max_bytes: u64,
        ttl: Duration,
        call_log: usize,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(RedisSessionStore {
            connections: Connections::new(url, timeout).map_err(|e| e.to_string())?,
            prefix: prefix.to_string(),
            script: Script::new(include_str!("session.lua")),
            max_bytes,
            ttl,
            call_log,
        })
    }

    /// The key session `id` lives under.
    pub fn key(&self, id: &SessionId) -> String {
        format!("{}:{{session:{id}}}", self.prefix)
    }

    /// Runs `op` on session `id` with `args`; the reply after its status,
    /// or the status when it is not `ok`.
    fn call(
        &self,
        id: &SessionId,
        op: &str,
        args: &[&[u8]],
    ) -> Result<Result<Vec<Value>, Status>, StoreError> {
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let reply: Vec<Value> = self
            .connections
            .run(&self.script, |call| {
                call.key(self.key(id))
                    .arg(op)
                    .arg(ttl_ms)
                    .arg(self.max_bytes);
                for a in args {
                    call.arg(*a);
                }
            })
            .map_err(StoreError::Unavailable)?;
        let mut reply = reply.into_iter();
        Ok(match reply.next() {
            Some(Value::BulkString(s)) if s == b"ok" => Ok(reply.collect()),
            Some(Value::BulkString(s)) if s == b"no-session" => Err(Status::NoSession),
            Some(Value::BulkString(s)) if s == b"too-large" => Err(Status::TooLarge),
            Some(Value::BulkString(s)) if s == b"not-a-counter" => Err(Status::NotACounter),
            other => {
                return Err(StoreError::Unavailable(format!(
                    "unexpected reply from Redis: {other:?}"
                )));
            }
        })
    }

    /// [`call`](Self::call) for the operations whose every refusal is a
    /// [`StoreError`].
    fn run(&self, id: &SessionId, op: &str, args: &[&[u8]]) -> Result<Vec<Value>, StoreError> {
        self.call(id, op, args)?
            .map_err(|status| self.refused(status, op))
    }

    fn refused(&self, status: Status, op: &str) -> StoreError {
        match status {
            Status::NoSession => StoreError::NoSession,
            Status::TooLarge => StoreError::TooLarge(self.max_bytes),
            Status::NotACounter => {
                StoreError::Unavailable(format!("`{op}` answered not-a-counter"))
            }
        }
    }
}

/// What `session.lua` answers instead of `ok`.
enum Status {
    NoSession,
    TooLarge,
    NotACounter,
}

fn int(v: Option<&Value>) -> Result<u64, StoreError> {
    match v {
        Some(Value::Int(n)) => Ok((*n).max(0) as u64),
        other => Err(StoreError::Unavailable(format!(
            "unexpected reply from Redis: {other:?}"
        ))),
    }
}

impl SessionStore for RedisSessionStore {
    fn create(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(int(self.run(id, "create", &[])?.first())? == 1)
    }

    fn exists(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(int(self.run(id, "exists", &[])?.first())? == 1)
    }

    fn remove(&self, id: &SessionId) -> Result<bool, StoreError> {
        Ok(int(self.run(id, "remove", &[])?.first())? == 1)
    }

    fn get(&self, session: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let reply = self.run(session, "get", &[key.as_bytes()])?;
        match reply.get(1) {
            Some(Value::BulkString(v)) => Ok(Some(v.clone())),
            _ => Ok(None),
        }
    }

    fn set(&self, session: &SessionId, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.run(session, "set", &[key.as_bytes(), &value])
            .map(|_| ())
    }

    fn delete(&self, session: &SessionId, key: &str) -> Result<bool, StoreError> {
        Ok(int(self.run(session, "delete", &[key.as_bytes()])?.first())? == 1)
    }

    fn list_keys(&self, session: &SessionId) -> Result<Vec<String>, StoreError> {
        let reply = self.run(session, "keys", &[])?;
        let Some(Value::Array(keys)) = reply.first() else {
            // An empty Lua table comes back as an empty array, never absent.
            return Err(StoreError::Unavailable(format!(
                "unexpected reply from Redis: {reply:?}"
            )));
        };
        Ok(keys
            .iter()
            .filter_map(|k| match k {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect())
    }

    fn compare_and_swap(
        &self,
        session: &SessionId,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let flag = |present: bool| if present { b"1" } else { b"0" };
        let reply = self.run(
            session,
            "cas",
            &[
                key.as_bytes(),
                flag(expected.is_some()),
                expected.unwrap_or_default(),
                flag(new.is_some()),
                new.as_deref().unwrap_or_default(),
            ],
        )?;
        Ok(int(reply.first())? == 1)
    }

    fn increment(&self, session: &SessionId, key: &str, by: i64) -> Result<i64, IncrementError> {
        let by = by.to_string();
        let reply = match self.call(session, "incr", &[key.as_bytes(), by.as_bytes()])? {
            Ok(reply) => reply,
            Err(Status::NotACounter) => return Err(IncrementError::NotACounter),
            Err(status) => return Err(self.refused(status, "incr").into()),
        };
        match reply.first() {
            Some(Value::BulkString(v)) => super::counter(v),
            _ => None,
        }
        .ok_or_else(|| {
            StoreError::Unavailable(format!("unexpected reply from Redis: {reply:?}")).into()
        })
    }

    fn record(&self, session: &SessionId, call: &CallRecord) -> Result<(), StoreError> {
        let usage = call.usage();
        let [calls, micros, tokens, cpu, keep, requests] = [
            usage.calls,
            usage.micros,
            usage.tokens,
            usage.cpu_nanos,
            self.call_log as u64,
            usage.requests,
        ]
        .map(|n| n.to_string());
        let record = serde_json::to_vec(call).expect("a call record is plain data");
        self.run(
            session,
            "record",
            &[
                calls.as_bytes(),
                micros.as_bytes(),
                tokens.as_bytes(),
                cpu.as_bytes(),
                &record,
                keep.as_bytes(),
                requests.as_bytes(),
            ],
        )
        .map(|_| ())
    }

    fn usage(&self, session: &SessionId) -> Result<Usage, StoreError> {
        let reply = self.run(session, "usage", &[])?;
        Ok(Usage {
            calls: int(reply.first())?,
            micros: int(reply.get(1))?,
            tokens: int(reply.get(2))?,
            cpu_nanos: int(reply.get(3))?,
            requests: int(reply.get(4))?,
        })
    }

    fn calls(&self, session: &SessionId, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let limit = limit.to_string();
        let reply = self.run(session, "calls", &[limit.as_bytes()])?;
        let Some(Value::Array(records)) = reply.first() else {
            return Err(StoreError::Unavailable(format!(
                "unexpected reply from Redis: {reply:?}"
            )));
        };
        records
            .iter()
            .map(|r| match r {
                Value::BulkString(b) => serde_json::from_slice(b).map_err(|e| {
                    StoreError::Unavailable(format!("a call record in Redis is not one: {e}"))
                }),
                other => Err(StoreError::Unavailable(format!(
                    "unexpected reply from Redis: {other:?}"
                ))),
            })
            .collect()
    }
}
