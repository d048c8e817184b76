//! A budget kept in Redis: one hash per budget under one hash tag, changed
//! only by `script.lua`, which reads the Redis server's clock.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, Script};

use super::level::{Levels, Op, Outcome, Params, Part};
use super::{Store, Unreachable};
use crate::lanes::Lane;

/// One budget's buckets in Redis.
pub(crate) struct RedisStore {
    client: Client,
    key: String,
    script: Script,
    timeout: Duration,
    /// Connections not in use; a failed one is dropped, not returned.
    idle: Mutex<Vec<Connection>>,
}

impl RedisStore {
    /// A store for budget `name` at `url`, with keys under `prefix`. Does
    /// not connect yet.
    pub(crate) fn new(
        url: &str,
        prefix: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        Ok(RedisStore {
            client: Client::open(url)?,
            // The hash tag keeps every key of this budget in one cluster slot.
            key: format!("{prefix}:{{budget:{name}}}"),
            script: Script::new(include_str!("script.lua")),
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The key the budget lives under.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn connection(&self) -> redis::RedisResult<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = self.client.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        c.set_write_timeout(Some(self.timeout))?;
        Ok(c)
    }
}

impl Store for RedisStore {
    fn step(&self, p: &Params, op: Op, now_us: Option<i64>) -> Result<Outcome, Unreachable> {
        let (name, lane, cost, part, ticket, max_wait) = match op {
            Op::Reserve {
                lane,
                cost,
                max_wait_us,
            } => ("reserve", lane, cost, Part::Shared, 0, max_wait_us),
            Op::Refund { part, cost, ticket } => ("refund", Lane::Heavy, cost, part, ticket, None),
            Op::Peek => ("peek", Lane::Heavy, 0.0, Part::Shared, 0, None),
        };
        let mut con = self.connection().map_err(|e| Unreachable(e.to_string()))?;
        let mut call = self.script.prepare_invoke();
        call.key(&self.key)
            .arg(name)
            .arg(p.capacity)
            .arg(p.period_us)
            .arg(p.burst)
            .arg(p.light_share)
            .arg(lane.as_str())
            .arg(cost)
            .arg(part.code())
            .arg(ticket)
            .arg(max_wait.map(|w| w.to_string()).unwrap_or_default())
            .arg(now_us.map(|n| n.to_string()).unwrap_or_default());
        // `invoke` runs EVALSHA and, after a SCRIPT FLUSH or a restart
        // (NOSCRIPT), loads the script and runs it again.
        let reply: Vec<String> = call
            .invoke(&mut con)
            .map_err(|e| Unreachable(e.to_string()))?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(con);
        parse(&reply).ok_or_else(|| Unreachable(format!("unexpected reply from Redis: {reply:?}")))
    }

    fn describe(&self) -> &'static str {
        "redis"
    }
}

fn parse(reply: &[String]) -> Option<Outcome> {
    let [part, granted, wait, ticket, returned, s, r, at] = reply else {
        return None;
    };
    let num = |t: &String| t.parse::<f64>().ok().filter(|x| x.is_finite());
    Some(Outcome {
        part: Part::from_code(part)?,
        granted: granted == "1",
        wait_us: num(wait)?,
        ticket: num(ticket)? as u64,
        returned: num(returned)?,
        levels: Levels {
            shared: num(s)?,
            reserved: num(r)?,
            at_us: num(at)? as i64,
            // The counts stay in Redis; only the arithmetic's tests read them.
            draws: [0; 2],
        },
    })
}
