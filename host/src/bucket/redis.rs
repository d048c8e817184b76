//! A budget kept in Redis: one hash per budget under one hash tag, changed
//! only by `script.lua`, which reads the Redis server's clock.

use std::time::Duration;

use redis::Script;

use super::level::{Levels, Op, Outcome, Params, Part};
use super::{Store, Unreachable};
use crate::lanes::Lane;
use crate::redis_conn::Connections;

/// One budget's buckets in Redis.
pub(crate) struct RedisStore {
    connections: Connections,
    key: String,
    script: Script,
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
            connections: Connections::new(url, timeout)?,
            // The hash tag keeps every key of this budget in one cluster slot.
            key: format!("{prefix}:{{budget:{name}}}"),
            script: Script::new(include_str!("script.lua")),
        })
    }

    /// The key the budget lives under.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &str {
        &self.key
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
            Op::Pause { for_us } => ("pause", Lane::Heavy, 0.0, Part::Shared, 0, Some(for_us)),
            Op::Peek => ("peek", Lane::Heavy, 0.0, Part::Shared, 0, None),
        };
        let reply: Vec<String> = self
            .connections
            .run(&self.script, |call| {
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
            })
            .map_err(Unreachable)?;
        parse(&reply).ok_or_else(|| Unreachable(format!("unexpected reply from Redis: {reply:?}")))
    }

    fn describe(&self) -> &'static str {
        "redis"
    }
}

fn parse(reply: &[String]) -> Option<Outcome> {
    let [part, granted, wait, ticket, returned, s, r, at, h] = reply else {
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
            hold_us: num(h)? as i64,
        },
    })
}
