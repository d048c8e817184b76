//! Jobs kept in Redis: the lanes as streams with one consumer group, each
//! job's state, batches, parsed pages and output under its lane's hash
//! tag, and every state change that must be atomic in `jobs.lua`.
//!
//! Key layout, for prefix `P` and lane `L` (`light` or `heavy`):
//!
//! | key | what |
//! |---|---|
//! | `P:{L}:stream` | the lane: one entry per batch (`unit` `bN`) or page retry (`pN`) to parse; consumer group `workers` |
//! | `P:{L}:dead` | batches that lost their worker too often |
//! | `P:{L}:active` / `P:{L}:waiting` | jobs admitted and not finished (sorted set) / those not started yet (list, in order) |
//! | `P:{L}:finished` / `P:{L}:results` | finished jobs by time / the bytes of their results (`#total` for all) |
//! | `P:{L}:job:ID` | the job's state (hash) |
//! | `P:{L}:job:ID:batch` | its batches (`bN`), pages cut alone (`pN`), pages that could not be cut (`eN`) |
//! | `P:{L}:job:ID:parsed` | parsed pages waiting to be chunked, by first page (`uN`) |
//! | `P:{L}:job:ID:out` | its chunk and page-error records (stream), ending with a `done` entry |
//! | `P:{L}:job:ID:errors` | its page errors |
//! | `P:{L}:job:ID:lock` / `:dirty` | who chunks it now / that more came meanwhile |

use std::collections::HashMap;
use std::time::Duration;

use redis::{Cmd, Connection, Script, Value};
use serde_json::json;

use super::{Entry, JobId, JobsError};
use crate::lanes::Lane;
use crate::redis_conn::Connections;

/// The consumer group every worker reads a lane with.
pub(crate) const GROUP: &str = "workers";

/// The jobs in one Redis.
pub(crate) struct RedisJobs {
    connections: Connections,
    prefix: String,
    script: Script,
    timeout: Duration,
}

/// A job's keys.
pub(crate) struct JobKeys {
    pub(crate) job: String,
    pub(crate) batch: String,
    pub(crate) parsed: String,
    pub(crate) out: String,
    pub(crate) errors: String,
    pub(crate) lock: String,
    pub(crate) dirty: String,
}

/// One page of a job's output.
pub(crate) struct OutPage {
    /// Records (NDJSON lines) after the cursor given.
    pub(crate) lines: Vec<String>,
    /// Where to read on from.
    pub(crate) next: String,
    /// Whether the job's output has ended (done, cancelled).
    pub(crate) ended: bool,
}

fn unavailable(e: String) -> JobsError {
    JobsError::Unavailable(e)
}

impl RedisJobs {
    /// Jobs at `url`, keys under `prefix`. Does not connect yet.
    pub(crate) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisJobs, String> {
        Ok(RedisJobs {
            connections: Connections::new(url, timeout).map_err(|e| e.to_string())?,
            prefix: prefix.to_string(),
            script: Script::new(include_str!("jobs.lua")),
            timeout,
        })
    }

    /// The stream of `lane`, as KEDA's `redis-streams` trigger names it.
    pub(crate) fn stream(&self, lane: Lane) -> String {
        format!("{}:{{{lane}}}:stream", self.prefix)
    }

    fn lane_key(&self, lane: Lane, name: &str) -> String {
        format!("{}:{{{lane}}}:{name}", self.prefix)
    }

    /// The keys of job `id`.
    pub(crate) fn keys(&self, id: &JobId) -> JobKeys {
        let base = format!("{}:{{{}}}:job:{}", self.prefix, id.lane(), id.as_str());
        JobKeys {
            batch: format!("{base}:batch"),
            parsed: format!("{base}:parsed"),
            out: format!("{base}:out"),
            errors: format!("{base}:errors"),
            lock: format!("{base}:lock"),
            dirty: format!("{base}:dirty"),
            job: base,
        }
    }

    fn cmd<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, JobsError> {
        self.connections
            .with(None, |c| cmd.query(c))
            .map_err(unavailable)
    }

    fn run(
        &self,
        prepare: impl FnOnce(&mut redis::ScriptInvocation<'_>),
    ) -> Result<Vec<Value>, JobsError> {
        self.connections
            .run(&self.script, prepare)
            .map_err(unavailable)
    }

    /// Creates each lane's stream and consumer group, if they are missing.
    pub(crate) fn ensure_groups(&self) -> Result<(), JobsError> {
        for lane in Lane::ALL {
            let created = self.connections.with(None, |c| {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(self.stream(lane))
                    .arg(GROUP)
                    .arg("$")
                    .arg("MKSTREAM")
                    .query::<()>(c)
            });
            match created {
                Ok(()) => {}
                Err(e) if e.contains("BUSYGROUP") => {}
                Err(e) => return Err(JobsError::Unavailable(e)),
            }
        }
        Ok(())
    }

    /// Answers a PING.
    pub(crate) fn ping(&self) -> Result<(), JobsError> {
        self.cmd::<String>(&redis::cmd("PING")).map(|_| ())
    }

    /// Stores batch `index` of admitted job `id` (its bytes, or its pages',
    /// or why a page could not be cut), as `(field, bytes)` pairs; the
    /// job's batches before it are stored. Whether the job still wants it
    /// (`false`: cancelled, or Redis forgot it).
    pub(crate) fn store_batch(
        &self,
        id: &JobId,
        index: usize,
        fields: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<bool, JobsError> {
        let k = self.keys(id);
        let lane = id.lane();
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(self.stream(lane))
                .key(&k.batch)
                .arg("store")
                .arg(id.as_str())
                .arg(index + 1)
                .arg(now_ms())
                .arg(millis(ttl));
            for (f, v) in fields {
                call.arg(f).arg(v.as_slice());
            }
        })?;
        Ok(status(&reply) == "ok")
    }

    /// Forgets job `id` if its document was never stored whole and its
    /// storing last moved before `stalled_before` (ms since the epoch);
    /// whether it did.
    pub(crate) fn discard(&self, id: &JobId, stalled_before: u64) -> Result<bool, JobsError> {
        let k = self.keys(id);
        let lane = id.lane();
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(self.lane_key(lane, "active"))
                .key(self.lane_key(lane, "waiting"))
                .key(&k.batch)
                .key(&k.parsed)
                .key(&k.out)
                .key(&k.errors)
                .key(&k.lock)
                .arg("discard")
                .arg(id.as_str())
                .arg(stalled_before);
        })?;
        Ok(status(&reply) == "ok")
    }

    /// Admits job `id` into its lane (running, or waiting its turn), with
    /// `fields` as its state, or says the lane is full (with how many wait).
    pub(crate) fn admit(
        &self,
        id: &JobId,
        running: usize,
        queue: usize,
        window: u32,
        ttl: Duration,
        fields: &[(&str, String)],
    ) -> Result<Result<String, usize>, JobsError> {
        let lane = id.lane();
        let k = self.keys(id);
        let now = now_ms();
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(self.stream(lane))
                .key(self.lane_key(lane, "active"))
                .key(self.lane_key(lane, "waiting"))
                .arg("admit")
                .arg(id.as_str())
                .arg(now)
                .arg(running)
                .arg(queue)
                .arg(window)
                .arg(millis(ttl));
            for (f, v) in fields {
                call.arg(*f).arg(v);
            }
        })?;
        match status(&reply) {
            "ok" => Ok(Ok(string(reply.get(1)))),
            "full" => Ok(Err(int(reply.get(1)) as usize)),
            other => Err(JobsError::Unavailable(format!("admit: {other}"))),
        }
    }

    /// Starts the next waiting job of `lane` while fewer than `running` run.
    pub(crate) fn promote(&self, lane: Lane, running: usize, window: u32) -> Result<(), JobsError> {
        loop {
            let reply = self.run(|call| {
                call.key(self.lane_key(lane, "active"))
                    .key(self.lane_key(lane, "waiting"))
                    .arg("promote")
                    .arg(running);
            })?;
            if status(&reply) != "ok" {
                return Ok(());
            }
            let Some(id) = JobId::parse(&string(reply.get(1))) else {
                continue;
            };
            let k = self.keys(&id);
            self.run(|call| {
                call.key(&k.job)
                    .key(self.stream(lane))
                    .arg("start")
                    .arg(id.as_str())
                    .arg(window);
            })?;
        }
    }

    /// Job `id`'s state, as a map of its fields; `None` if Redis does not
    /// hold it (never made, expired, or forgotten by a restarted Redis).
    pub(crate) fn state(&self, id: &JobId) -> Result<Option<HashMap<String, String>>, JobsError> {
        let map: HashMap<String, String> =
            self.cmd(redis::cmd("HGETALL").arg(self.keys(id).job))?;
        // A job is its status: a key without one is a stray write.
        Ok(map.contains_key("status").then_some(map))
    }

    /// Some fields of job `id`'s state (missing ones empty).
    pub(crate) fn fields(&self, id: &JobId, names: &[&str]) -> Result<Vec<String>, JobsError> {
        let values: Vec<Option<String>> =
            self.cmd(redis::cmd("HMGET").arg(self.keys(id).job).arg(names))?;
        Ok(values.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Adds `n` to field `field` of job `id`'s state, if Redis still holds
    /// the job (a write never makes a forgotten job's key again); the
    /// field's new value, `None` if the job is gone.
    pub(crate) fn add(&self, id: &JobId, field: &str, n: u64) -> Result<Option<u64>, JobsError> {
        let reply = self.run(|call| {
            call.key(self.keys(id).job)
                .arg("charge")
                .arg(field)
                .arg(n.min(i64::MAX as u64));
        })?;
        Ok((status(&reply) == "ok").then(|| int(reply.get(1)).max(0) as u64))
    }

    /// Job `id`'s page errors, as JSON records.
    pub(crate) fn errors(&self, id: &JobId) -> Result<Vec<String>, JobsError> {
        self.cmd(
            redis::cmd("LRANGE")
                .arg(self.keys(id).errors)
                .arg(0)
                .arg(-1),
        )
    }

    /// Some fields of job `id`'s state (missing ones empty) and, in the
    /// same round trip, field `batch` of its batches.
    pub(crate) fn fields_and_batch(
        &self,
        id: &JobId,
        names: &[&str],
        batch: &str,
    ) -> Result<(Vec<String>, Option<Vec<u8>>), JobsError> {
        let k = self.keys(id);
        let (values, bytes): (Vec<Option<String>>, Option<Vec<u8>>) = self
            .connections
            .with(None, |c| {
                redis::pipe()
                    .hmget(&k.job, names)
                    .hget(&k.batch, batch)
                    .query(c)
            })
            .map_err(unavailable)?;
        Ok((
            values.into_iter().map(Option::unwrap_or_default).collect(),
            bytes,
        ))
    }

    /// A field of job `id`'s batches.
    pub(crate) fn batch(&self, id: &JobId, field: &str) -> Result<Option<Vec<u8>>, JobsError> {
        self.cmd(redis::cmd("HGET").arg(self.keys(id).batch).arg(field))
    }

    /// The parsed pages of job `id` starting at page index `first`, as
    /// their JSON, if they are there.
    pub(crate) fn parsed(&self, id: &JobId, first: u32) -> Result<Option<String>, JobsError> {
        self.cmd(
            redis::cmd("HGET")
                .arg(self.keys(id).parsed)
                .arg(format!("u{first}")),
        )
    }

    /// What the chunk lock holder of job `id` needs next, in one round
    /// trip: the job's status, its chunk cursor and chunker state, and the
    /// parsed pages waiting at the cursor.
    pub(crate) fn peek(&self, id: &JobId) -> Result<Peek, JobsError> {
        let k = self.keys(id);
        let reply = self.run(|call| {
            call.key(&k.job).key(&k.parsed).arg("peek");
        })?;
        Ok(Peek {
            status: string(reply.get(1)),
            cursor: string(reply.get(2)).parse().unwrap_or(0),
            state: string(reply.get(3)),
            waiting: match reply.get(4) {
                Some(Value::BulkString(_) | Value::SimpleString(_)) => Some(string(reply.get(4))),
                _ => None,
            },
        })
    }

    /// Records after `from` in job `id`'s output (`0` for all), waiting up
    /// to `block` for some when there are none.
    pub(crate) fn out(
        &self,
        id: &JobId,
        from: &str,
        block: Duration,
    ) -> Result<OutPage, JobsError> {
        let key = self.keys(id).out;
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(512);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(millis(block));
        }
        cmd.arg("STREAMS").arg(&key).arg(from);
        let reply: Value = self
            .connections
            .with(Some(self.timeout + block), |c| cmd.query(c))
            .map_err(unavailable)?;
        let mut page = OutPage {
            lines: Vec::new(),
            next: from.to_string(),
            ended: false,
        };
        for (_, entries) in streams(&reply) {
            for (entry, fields) in entries {
                page.next = entry;
                if let Some(line) = fields.get("line") {
                    page.lines.push(line.clone());
                }
                if fields.contains_key("done") {
                    page.ended = true;
                }
            }
        }
        Ok(page)
    }

    /// Cancels job `id`: its remaining batches are dropped wherever they
    /// are. Whether it was still running or waiting.
    pub(crate) fn cancel(&self, id: &JobId, retention: Duration) -> Result<bool, JobsError> {
        let lane = id.lane();
        let k = self.keys(id);
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(&k.out)
                .key(self.lane_key(lane, "active"))
                .key(self.lane_key(lane, "waiting"))
                .key(self.lane_key(lane, "finished"))
                .key(&k.parsed)
                .key(&k.batch)
                .key(&k.lock)
                .key(&k.errors)
                .arg("cancel")
                .arg(id.as_str())
                .arg(now_ms())
                .arg(millis(retention));
        })?;
        Ok(status(&reply) == "ok")
    }

    /// Job ids of `lane`: those admitted and not finished, then the most
    /// recently finished (at most `finished`).
    pub(crate) fn list(&self, lane: Lane, finished: usize) -> Result<Vec<JobId>, JobsError> {
        let active: Vec<String> = self.cmd(
            redis::cmd("ZRANGE")
                .arg(self.lane_key(lane, "active"))
                .arg(0)
                .arg(-1),
        )?;
        let done: Vec<String> = self.cmd(
            redis::cmd("ZRANGE")
                .arg(self.lane_key(lane, "finished"))
                .arg(0)
                .arg(finished.saturating_sub(1))
                .arg("REV"),
        )?;
        Ok(active
            .iter()
            .chain(&done)
            .filter_map(|s| JobId::parse(s))
            .collect())
    }

    /// Forgets finished jobs past `retention`, then drops the results of
    /// the oldest finished jobs of both lanes while they hold more than
    /// `cap` bytes; what that freed.
    pub(crate) fn sweep(&self, retention: Duration, cap: u64) -> Result<u64, JobsError> {
        let cutoff = now_ms().saturating_sub(millis(retention));
        for lane in Lane::ALL {
            self.run(|call| {
                call.key(self.lane_key(lane, "finished"))
                    .key(self.lane_key(lane, "results"))
                    .arg("forget")
                    .arg(cutoff);
            })?;
        }
        let mut freed = 0;
        let mut total = self.results_bytes()?;
        while total > cap {
            // The oldest finished job of either lane.
            let mut oldest: Option<(f64, JobId)> = None;
            for lane in Lane::ALL {
                let first: Vec<(String, f64)> = self.cmd(
                    redis::cmd("ZRANGE")
                        .arg(self.lane_key(lane, "finished"))
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES"),
                )?;
                if let Some((id, at)) = first.into_iter().next()
                    && let Some(id) = JobId::parse(&id)
                    && oldest.as_ref().is_none_or(|(t, _)| at < *t)
                {
                    oldest = Some((at, id));
                }
            }
            let Some((_, id)) = oldest else { break };
            let k = self.keys(&id);
            let reply = self.run(|call| {
                call.key(&k.job)
                    .key(&k.out)
                    .key(&k.errors)
                    .key(self.lane_key(id.lane(), "finished"))
                    .key(self.lane_key(id.lane(), "results"))
                    .arg("evict")
                    .arg(id.as_str());
            })?;
            let n = int(reply.get(1)).max(0) as u64;
            freed += n;
            total = total.saturating_sub(n.max(1));
        }
        Ok(freed)
    }

    /// What the results of both lanes' finished and running jobs hold.
    pub(crate) fn results_bytes(&self) -> Result<u64, JobsError> {
        let mut total = 0;
        for lane in Lane::ALL {
            let n: Option<i64> = self.cmd(
                redis::cmd("HGET")
                    .arg(self.lane_key(lane, "results"))
                    .arg("#total"),
            )?;
            total += n.unwrap_or(0).max(0) as u64;
        }
        Ok(total)
    }

    // ---- the workers' side -------------------------------------------

    /// The next new entry of `lane` for `consumer`, waiting up to `block`.
    pub(crate) fn read_new(
        &self,
        lane: Lane,
        consumer: &str,
        block: Duration,
    ) -> Result<Option<Entry>, JobsError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(millis(block));
        }
        cmd.arg("STREAMS").arg(self.stream(lane)).arg(">");
        let reply: Value = self
            .connections
            .with(Some(self.timeout + block), |c| cmd.query(c))
            .map_err(unavailable)?;
        Ok(streams(&reply)
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .find_map(|(id, fields)| Entry::new(lane, id, &fields, 1)))
    }

    /// An entry of `lane` idle past `lease` (its worker is gone), claimed
    /// for `consumer`, with its delivery count.
    pub(crate) fn reclaim(
        &self,
        lane: Lane,
        consumer: &str,
        lease: Duration,
    ) -> Result<Option<Entry>, JobsError> {
        let stream = self.stream(lane);
        let reply: Value = self.cmd(
            redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(millis(lease))
                .arg("0-0")
                .arg("COUNT")
                .arg(1),
        )?;
        let Value::Array(parts) = reply else {
            return Ok(None);
        };
        let Some(claimed) = parts.get(1) else {
            return Ok(None);
        };
        let Some((id, fields)) = entries(claimed).into_iter().next() else {
            return Ok(None);
        };
        let pending: Value = self.cmd(
            redis::cmd("XPENDING")
                .arg(&stream)
                .arg(GROUP)
                .arg(&id)
                .arg(&id)
                .arg(1),
        )?;
        let deliveries = match &pending {
            Value::Array(rows) => match rows.first() {
                Some(Value::Array(row)) => int(row.get(3)).max(1) as u32,
                _ => 1,
            },
            _ => 1,
        };
        match Entry::new(lane, id.clone(), &fields, deliveries) {
            Some(entry) => Ok(Some(entry)),
            None => {
                // Not an entry of ours: acknowledge it away.
                self.cmd::<i64>(redis::cmd("XACK").arg(&stream).arg(GROUP).arg(&id))?;
                Ok(None)
            }
        }
    }

    /// Reports what became of `entry`, if `consumer` still holds it: the
    /// pages of its unit parsed (`results`, their JSON), or the unit split
    /// into one entry per page, or given up (`dead`, with why).
    pub(crate) fn complete(
        &self,
        entry: &Entry,
        consumer: &str,
        outcome: Completion<'_>,
    ) -> Result<Completed, JobsError> {
        let k = self.keys(&entry.job);
        let lane = entry.lane;
        let (first, count) = (outcome.first, outcome.pages);
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(self.stream(lane))
                .key(&k.parsed)
                .key(self.lane_key(lane, "dead"))
                .arg("complete")
                .arg(&entry.id)
                .arg(consumer)
                .arg(entry.deliveries)
                .arg(entry.job.as_str())
                .arg(entry.unit.to_string())
                .arg(first)
                .arg(count);
            match outcome.what {
                What::Parsed(results) => call.arg("parsed").arg(results).arg(""),
                What::Split => call.arg("split").arg("").arg(""),
                What::Dead { results, reason } => call.arg("dead").arg(results).arg(reason),
            };
        })?;
        Ok(match status(&reply) {
            "ok" => Completed::Recorded,
            "fenced" => Completed::Fenced,
            _ => Completed::JobGone,
        })
    }

    /// Renews `consumer`'s claims on `entries` of `lane`; the ids it no
    /// longer holds.
    pub(crate) fn renew(
        &self,
        lane: Lane,
        consumer: &str,
        entries: &[(String, u32)],
    ) -> Result<Vec<String>, JobsError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self.run(|call| {
            call.key(self.stream(lane)).arg("renew").arg(consumer);
            for (id, deliveries) in entries {
                call.arg(id).arg(*deliveries);
            }
        })?;
        Ok(match reply.get(1) {
            Some(Value::Array(lost)) => lost.iter().map(|v| string(Some(v))).collect(),
            _ => Vec::new(),
        })
    }

    /// Gives `entry` up at once, for another worker to take.
    pub(crate) fn hand_back(
        &self,
        entry: &Entry,
        consumer: &str,
        lease: Duration,
    ) -> Result<(), JobsError> {
        self.run(|call| {
            call.key(self.stream(entry.lane))
                .arg("handback")
                .arg(&entry.id)
                .arg(consumer)
                .arg(entry.deliveries)
                .arg(millis(lease) * 10);
        })
        .map(|_| ())
    }

    /// Takes job `id`'s chunk lock with `token` for `lease`; `false` when
    /// another holds it (it will look again before it lets go).
    pub(crate) fn lock(&self, id: &JobId, token: &str, lease: Duration) -> Result<bool, JobsError> {
        let k = self.keys(id);
        let reply = self.run(|call| {
            call.key(&k.lock)
                .key(&k.dirty)
                .arg("lock")
                .arg(token)
                .arg(millis(lease));
        })?;
        Ok(status(&reply) == "ok")
    }

    /// Lets go of job `id`'s chunk lock, unless more came while it was
    /// held (`Again`: look again first).
    pub(crate) fn unlock(&self, id: &JobId, token: &str) -> Result<Unlocked, JobsError> {
        let k = self.keys(id);
        let reply = self.run(|call| {
            call.key(&k.lock).key(&k.dirty).arg("unlock").arg(token);
        })?;
        Ok(match status(&reply) {
            "again" => Unlocked::Again,
            "released" => Unlocked::Released,
            _ => Unlocked::Lost,
        })
    }

    /// Renews job `id`'s chunk lock; whether `token` still holds it.
    pub(crate) fn relock(
        &self,
        id: &JobId,
        token: &str,
        lease: Duration,
    ) -> Result<bool, JobsError> {
        let k = self.keys(id);
        let reply = self.run(|call| {
            call.key(&k.lock)
                .arg("relock")
                .arg(token)
                .arg(millis(lease));
        })?;
        Ok(status(&reply) == "ok")
    }

    /// Appends chunked output to job `id` under the chunk lock: its
    /// records, the chunk state and cursor after them, and whether the job
    /// is done.
    pub(crate) fn append(&self, id: &JobId, a: &Append<'_>) -> Result<Appended, JobsError> {
        let k = self.keys(id);
        let lane = id.lane();
        let reply = self.run(|call| {
            call.key(&k.job)
                .key(&k.out)
                .key(&k.errors)
                .key(&k.lock)
                .key(&k.parsed)
                .key(&k.batch)
                .key(self.lane_key(lane, "active"))
                .key(self.lane_key(lane, "finished"))
                .key(self.lane_key(lane, "results"))
                .arg("append")
                .arg(a.token)
                .arg(id.as_str())
                .arg(a.cursor)
                .arg(a.next_cursor)
                .arg(a.state)
                .arg(if a.done { "1" } else { "0" })
                .arg(now_ms())
                .arg(millis(a.retention))
                .arg(a.drop_batches.join(","));
            for (kind, line) in &a.records {
                call.arg(if *kind { "c" } else { "e" }).arg(line);
            }
        })?;
        Ok(match status(&reply) {
            "ok" => Appended::Ok,
            "done" => Appended::Done,
            "fenced" => Appended::Fenced,
            _ => Appended::Gone,
        })
    }

    /// What `lane`'s stream holds now, for metrics and autoscalers.
    pub(crate) fn lane_stats(&self, lane: Lane) -> Result<LaneStream, JobsError> {
        let stream = self.stream(lane);
        self.connections
            .with(None, |c| {
                lane_stats(c, &stream, &self.lane_key(lane, "dead"))
            })
            .map_err(unavailable)
    }
}

/// What a lane's stream holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LaneStream {
    /// Entries in the stream (waiting or being worked on).
    pub(crate) length: u64,
    /// Entries claimed by a worker and not yet done.
    pub(crate) pending: u64,
    /// Entries no worker has claimed yet.
    pub(crate) lag: u64,
    /// How long the oldest claimed entry has been in the stream, seconds.
    pub(crate) oldest_pending_secs: f64,
    /// Dead letters kept.
    pub(crate) dead: u64,
}

fn lane_stats(c: &mut Connection, stream: &str, dead: &str) -> redis::RedisResult<LaneStream> {
    let mut s = LaneStream {
        length: redis::cmd("XLEN").arg(stream).query(c)?,
        dead: redis::cmd("XLEN").arg(dead).query(c)?,
        ..LaneStream::default()
    };
    let groups: Value = redis::cmd("XINFO").arg("GROUPS").arg(stream).query(c)?;
    if let Value::Array(groups) = groups {
        for g in groups {
            let fields = flat_map(&g);
            if fields.get("name").map(String::as_str) == Some(GROUP) {
                s.pending = fields
                    .get("pending")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                s.lag = fields.get("lag").and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
    }
    let oldest: Value = redis::cmd("XPENDING")
        .arg(stream)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(1)
        .query(c)?;
    if let Value::Array(rows) = oldest
        && let Some(Value::Array(row)) = rows.first()
    {
        let id = string(row.first());
        let at: u64 = id
            .split('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        s.oldest_pending_secs = now_ms().saturating_sub(at) as f64 / 1000.0;
    }
    Ok(s)
}

/// What became of an entry's unit: pages `first..first + pages` (0-based).
pub(crate) struct Completion<'a> {
    pub(crate) first: u32,
    pub(crate) pages: u32,
    pub(crate) what: What<'a>,
}

/// What became of the pages of a unit.
pub(crate) enum What<'a> {
    /// Parsed: their results (JSON).
    Parsed(&'a str),
    /// The unit failed as a whole: one entry per page.
    Split,
    /// Given up: their errors (JSON), and why.
    Dead { results: &'a str, reason: &'a str },
}

/// What a completion came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Recorded, and the entry acknowledged.
    Recorded,
    /// Another claim holds the entry now: nothing was recorded.
    Fenced,
    /// The job is gone or no longer running; the entry was dropped.
    JobGone,
}

/// What letting go of a chunk lock came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unlocked {
    Released,
    Again,
    Lost,
}

/// Where a job's chunking stands, as [`RedisJobs::peek`] read it.
pub(crate) struct Peek {
    /// `running`, or how the job ended (empty: Redis does not hold it).
    pub(crate) status: String,
    /// Pages chunked so far.
    pub(crate) cursor: u32,
    /// The chunker's state, as JSON (empty at the start).
    pub(crate) state: String,
    /// The parsed pages waiting at the cursor, as JSON.
    pub(crate) waiting: Option<String>,
}

/// Output to append to a job.
pub(crate) struct Append<'a> {
    pub(crate) token: &'a str,
    pub(crate) cursor: u32,
    pub(crate) next_cursor: u32,
    pub(crate) state: &'a str,
    pub(crate) done: bool,
    pub(crate) retention: Duration,
    /// Batch fields no longer needed.
    pub(crate) drop_batches: Vec<String>,
    /// Records: (whether it is a chunk, its JSON line).
    pub(crate) records: Vec<(bool, String)>,
}

/// What an append came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    Ok,
    Done,
    Fenced,
    Gone,
}

fn status(reply: &[Value]) -> &str {
    match reply.first() {
        Some(Value::BulkString(b)) => std::str::from_utf8(b).unwrap_or(""),
        Some(Value::SimpleString(s)) => s,
        _ => "",
    }
}

fn string(v: Option<&Value>) -> String {
    match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => *n,
        other => string(other).parse().unwrap_or(0),
    }
}

/// A flat [k, v, k, v] reply (or a map) as a map.
fn flat_map(v: &Value) -> HashMap<String, String> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((string(Some(k)), string(Some(v)))),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| (string(Some(k)), string(Some(v))))
            .collect(),
        _ => HashMap::new(),
    }
}

type Entries = Vec<(String, HashMap<String, String>)>;

/// The entries of an `[[id, [k, v, ...]], ...]` reply.
fn entries(v: &Value) -> Entries {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| match e {
            Value::Array(pair) => match pair.as_slice() {
                [id, fields] => Some((string(Some(id)), flat_map(fields))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The streams of an XREAD / XREADGROUP reply.
fn streams(v: &Value) -> Vec<(String, Entries)> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => match pair.as_slice() {
                    [name, es] => Some((string(Some(name)), entries(es))),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(name, es)| (string(Some(name)), entries(es)))
            .collect(),
        _ => Vec::new(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the epoch, by this host's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

/// A job's state as the API reports it.
pub(crate) fn describe(
    id: &JobId,
    state: &HashMap<String, String>,
    errors: &[String],
) -> serde_json::Value {
    let num = |k: &str| {
        state
            .get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let status = state.get("status").map_or("running", String::as_str);
    let state_name = match status {
        "queued" | "running" => "running",
        other => other,
    };
    let mut out = json!({
        "job": id.as_str(), "lane": id.lane().as_str(), "state": state_name,
        "pages": num("pages"), "pages_done": num("cursor"), "chunks": num("chunks"),
        "errors": errors.iter().filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok()).collect::<Vec<_>>(),
    });
    if status == "queued" {
        out["queued"] = json!(true);
    }
    if status == "evicted" {
        out["message"] = json!(
            "the job finished; its results were dropped to keep memory within server.max_results_mib (the oldest finished jobs' go first)"
        );
    }
    out
}

/// The board of a server whose jobs live in Redis: any replica accepts,
/// follows and cancels any job; worker replicas parse them.
pub(crate) struct RedisBoard {
    host: std::sync::Arc<crate::host::Host>,
    store: std::sync::Arc<RedisJobs>,
}

impl RedisBoard {
    /// A board on `store`, accepting documents for `host`'s settings.
    pub(crate) fn new(
        host: std::sync::Arc<crate::host::Host>,
        store: std::sync::Arc<RedisJobs>,
    ) -> RedisBoard {
        RedisBoard { host, store }
    }

    /// Admits the job, then cuts `doc` into its batches and stores them in
    /// order: workers start on the first while the rest are cut. The job is
    /// accepted once every batch is stored; if that fails half-way, the job
    /// is forgotten (nobody was given its id).
    fn accept(
        &self,
        doc: &warmlane_pdf::PdfDocument,
    ) -> Result<super::Accepted, super::BoardError> {
        use super::BoardError;
        use crate::pipeline::parsing::Parsing;
        let host = &self.host;
        let config = host.config();
        let lane = host.lane_for(doc);
        let id = JobId::new(lane);
        let pages = doc.page_count();
        let span = tracing::info_span!("job", job = %id, lane = %lane, pages, trace_id = tracing::field::Empty);
        crate::telemetry::mark(&span);
        let _enter = span.enter();
        let spec = super::worker::JobSpec::new(host, pages);
        let ranges = Parsing::ranges(pages, spec.batch_pages);
        // Kept while the job may still be running; its retention once done.
        let ttl = Duration::from_secs(24 * 3600);
        let lanes = host.lane_settings().lanes[lane as usize];
        let fields = [
            ("pages", pages.to_string()),
            ("batches", ranges.len().to_string()),
            ("spec", serde_json::to_string(&spec).unwrap_or_default()),
            ("state", String::new()),
            // The job's trace context, for the spans of its batches.
            (
                "trace",
                crate::telemetry::traceparent(&span).unwrap_or_default(),
            ),
        ];
        if let Err(queued) = self.store.admit(
            &id,
            lanes.running,
            lanes.queue,
            config.jobs.window,
            ttl,
            &fields,
        )? {
            return Err(BoardError::Submit(crate::error::SubmitError::LaneFull {
                lane,
                queued,
            }));
        }
        for (i, range) in ranges.iter().enumerate() {
            let stored = self
                .store
                .store_batch(&id, i, &cut(doc, i, range.clone()), ttl);
            match stored {
                Ok(true) => {}
                // Cancelled while it was being stored; its state says so.
                Ok(false) if matches!(self.store.state(&id), Ok(Some(_))) => break,
                Ok(false) => {
                    return Err(BoardError::Unavailable(
                        "the job was dropped while its document was being stored: Redis forgot it, or storing stalled past jobs.lease_ms".into(),
                    ));
                }
                Err(e) => {
                    if let Err(again) = self.store.discard(&id, u64::MAX) {
                        tracing::warn!(job = %id, "a job half stored is left for the workers to forget: {again}");
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(super::Accepted {
            id: id.to_string(),
            lane,
            pages,
        })
    }
}

/// Batch `index` (pages `range`) of `doc` as the fields that store it: the
/// batch cut whole (`b{index}`), or, when some page of it cannot be cut,
/// each page that can (`p{page}`) and why each other cannot (`e{page}`).
fn cut(
    doc: &warmlane_pdf::PdfDocument,
    index: usize,
    range: std::ops::Range<usize>,
) -> Vec<(String, Vec<u8>)> {
    if let Ok(bytes) = doc.batch(range.clone()) {
        return vec![(format!("b{index}"), bytes)];
    }
    range
        .map(|p| match doc.batch(p..p + 1) {
            Ok(bytes) => (format!("p{p}"), bytes),
            Err(e) => (
                format!("e{p}"),
                format!("cannot cut the page out of the document: {e}").into_bytes(),
            ),
        })
        .collect()
}

/// How long a follower waits on a job's output before it looks again.
const FOLLOW_BLOCK: Duration = Duration::from_secs(2);

#[async_trait::async_trait]
impl super::Board for RedisBoard {
    async fn submit(
        &self,
        doc: warmlane_pdf::PdfDocument,
        _size: u64,
    ) -> Result<super::Accepted, super::BoardError> {
        let board = RedisBoard {
            host: self.host.clone(),
            store: self.store.clone(),
        };
        crate::telemetry::spawn_blocking(move || {
            let accepted = board.accept(&doc);
            // The document, read whole to be cut, is many times its file's
            // size; once its batches are in Redis, that memory goes back.
            drop(doc);
            crate::memory::release_freed();
            accepted
        })
        .await
        .map_err(|e| super::BoardError::Unavailable(e.to_string()))?
    }

    async fn describe(&self, id: &str) -> Result<Option<serde_json::Value>, super::BoardError> {
        let Some(id) = JobId::parse(id) else {
            return Ok(None);
        };
        let store = self.store.clone();
        blocking(move || {
            let Some(state) = store.state(&id)? else {
                return Ok(None);
            };
            let errors = store.errors(&id)?;
            Ok(Some(describe(&id, &state, &errors)))
        })
        .await
    }

    async fn follow(&self, id: &str, cursor: &str) -> Result<super::Follow, super::BoardError> {
        use super::Follow;
        let Some(id) = JobId::parse(id) else {
            return Ok(Follow::Unknown);
        };
        let store = self.store.clone();
        let cursor = cursor.to_string();
        blocking(move || {
            let page = store.out(&id, &cursor, Duration::ZERO)?;
            if !page.lines.is_empty() || page.ended {
                return Ok(Follow::Lines {
                    lines: page.lines,
                    next: page.next,
                    ended: page.ended,
                });
            }
            let state = store.fields(&id, &["status"])?;
            match state[0].as_str() {
                "" if cursor == "0" => return Ok(Follow::Unknown),
                "" => return Ok(Follow::Lost),
                "evicted" => return Ok(Follow::Evicted),
                _ => {}
            }
            let page = store.out(&id, &cursor, FOLLOW_BLOCK)?;
            Ok(Follow::Lines {
                lines: page.lines,
                next: page.next,
                ended: page.ended,
            })
        })
        .await
    }

    async fn cancel(&self, id: &str) -> Result<Option<bool>, super::BoardError> {
        let Some(id) = JobId::parse(id) else {
            return Ok(None);
        };
        let store = self.store.clone();
        let retention = Duration::from_secs(self.host.config().server.job_retention_secs);
        blocking(move || {
            if store.state(&id)?.is_none() {
                return Ok(None);
            }
            Ok(Some(store.cancel(&id, retention)?))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<serde_json::Value>, super::BoardError> {
        let store = self.store.clone();
        blocking(move || {
            let mut out = Vec::new();
            for lane in Lane::ALL {
                for id in store.list(lane, 100)? {
                    if let Some(state) = store.state(&id)? {
                        out.push(describe(&id, &state, &[]));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sweep(&self) -> u64 {
        let store = self.store.clone();
        let server = &self.host.config().server;
        let retention = Duration::from_secs(server.job_retention_secs);
        let cap = server.max_results_mib << 20;
        tokio::task::spawn_blocking(move || store.sweep(retention, cap))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0)
    }

    fn running_here(&self) -> usize {
        0
    }

    async fn metrics(&self) -> Box<dyn crate::metrics::Report> {
        lanes_metrics(self.store.clone()).await
    }
}

/// Runs `f` off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobsError> + Send + 'static,
) -> Result<T, super::BoardError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| super::BoardError::Unavailable(e.to_string()))?
        .map_err(super::BoardError::from)
}

/// The lanes' streams, gathered for a scrape: what an autoscaler reads.
pub(crate) struct LanesReport {
    stats: Vec<(Lane, LaneStream)>,
    results_bytes: Option<u64>,
}

/// The lanes' streams and the results' memory, as they are now (read off
/// the async threads): what an API or a worker replica reports.
pub(crate) async fn lanes_metrics(
    store: std::sync::Arc<RedisJobs>,
) -> Box<dyn crate::metrics::Report> {
    let report = tokio::task::spawn_blocking(move || {
        let mut stats = Vec::new();
        for lane in Lane::ALL {
            match store.lane_stats(lane) {
                Ok(s) => stats.push((lane, s)),
                Err(e) => tracing::debug!("lane stats: {e}"),
            }
        }
        LanesReport {
            stats,
            results_bytes: store.results_bytes().ok(),
        }
    })
    .await;
    match report {
        Ok(report) => Box::new(report),
        Err(_) => Box::new(super::Gauges(Vec::new())),
    }
}

impl crate::metrics::Report for LanesReport {
    fn report(&self, f: &mut crate::metrics::Families<'_, '_>) -> std::fmt::Result {
        let labels: Vec<[(&str, &str); 1]> = self
            .stats
            .iter()
            .map(|(lane, _)| [("lane", lane.as_str())])
            .collect();
        for (name, help, get) in [
            (
                "lane_stream_length",
                "Entries in the lane's stream: batches waiting or being parsed.",
                (|s: &LaneStream| s.length as f64) as fn(&LaneStream) -> f64,
            ),
            (
                "lane_stream_pending",
                "Entries a worker has claimed and not finished.",
                |s| s.pending as f64,
            ),
            (
                "lane_stream_lag",
                "Entries no worker has claimed yet (the consumer group's lag).",
                |s| s.lag as f64,
            ),
            (
                "lane_oldest_pending_seconds",
                "Age of the oldest claimed, unfinished entry.",
                |s| s.oldest_pending_secs,
            ),
            (
                "lane_dead_letters",
                "Dead letters kept: batches that lost their worker too often.",
                |s| s.dead as f64,
            ),
        ] {
            f.gauge(
                name,
                help,
                labels
                    .iter()
                    .zip(&self.stats)
                    .map(|(l, (_, s))| (&l[..], get(s))),
            )?;
        }
        if let Some(bytes) = self.results_bytes {
            f.gauge(
                "job_results_bytes",
                "Memory the results of the jobs in Redis hold (capped by server.max_results_mib).",
                [(&[][..], bytes as f64)],
            )?;
        }
        Ok(())
    }
}
