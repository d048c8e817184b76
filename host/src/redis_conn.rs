//! Blocking Redis connections for the stores kept in Redis (budgets,
//! sessions, jobs): opened on demand with timeouts, reused while they work,
//! dropped when they fail, and a script call that reloads the script after
//! a `SCRIPT FLUSH` or a restart.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, FromRedisValue, Script, ScriptInvocation};

/// Connections to one Redis.
pub(crate) struct Connections {
    client: Client,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Connections {
    /// Connections to `url`, each with `timeout` for connecting, reading and
    /// writing. Does not connect yet.
    pub(crate) fn new(url: &str, timeout: Duration) -> redis::RedisResult<Connections> {
        Ok(Connections {
            client: Client::open(url)?,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> redis::RedisResult<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = self.client.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        c.set_write_timeout(Some(self.timeout))?;
        Ok(c)
    }

    /// Runs `f` on a connection; a connection that failed is not reused.
    /// `read_timeout` replaces the usual one for this call (a blocking
    /// read waits longer than a command takes).
    pub(crate) fn with<T>(
        &self,
        read_timeout: Option<Duration>,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let mut con = self.take().map_err(|e| e.to_string())?;
        if let Some(t) = read_timeout {
            con.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        }
        let reply = f(&mut con).map_err(|e| e.to_string())?;
        if read_timeout.is_some() {
            con.set_read_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
        Ok(reply)
    }

    /// Runs `script` with the keys and arguments `prepare` adds. `invoke`
    /// sends EVALSHA and, on NOSCRIPT, loads the script and sends it again.
    /// A connection that failed is not reused.
    pub(crate) fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        prepare: impl FnOnce(&mut ScriptInvocation<'_>),
    ) -> Result<T, String> {
        let mut con = self.take().map_err(|e| e.to_string())?;
        let mut call = script.prepare_invoke();
        prepare(&mut call);
        let reply = call.invoke(&mut con).map_err(|e| e.to_string())?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
        Ok(reply)
    }
}
