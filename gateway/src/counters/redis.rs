//! Redis counters: one Lua script per request does GCRA, quota and the billable count in a
//! single round trip; every key the script touches carries the subscription's hash tag, so it
//! works on Redis Cluster too.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use turnpike_store::UsageRow;

use super::{limit_state, Admission, Bucket, BucketId, CounterError, Decision, IdMap, Outcome, Verdict};

/// Split per-bucket work into pipelines: on one node, batches of `BATCH` buckets in any mix; on
/// a cluster (`per_slot`) a pipeline must stay within one hash slot, and every key of a
/// subscription shares its slot, so one subscription per batch.
fn batches<T: Clone>(items: &[T], per_slot: bool, sub_id: impl Fn(&T) -> i64) -> Vec<Vec<T>> {
    if !per_slot {
        return items.chunks(BATCH).map(<[T]>::to_vec).collect();
    }
    let mut by_sub: std::collections::HashMap<i64, Vec<T>> = std::collections::HashMap::new();
    for item in items {
        by_sub.entry(sub_id(item)).or_default().push(item.clone());
    }
    by_sub.values().flat_map(|v| v.chunks(BATCH).map(<[T]>::to_vec)).collect()
}

/// The node's script cache lacks the script (Redis restarted, failed over, or `SCRIPT FLUSH`).
/// By kind, not by message: redis-rs 1.x prints the code as `NoScript`, not `NOSCRIPT`.
fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

fn wall_us() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX / 2)
}

// KEYS[1] rate (TAT), KEYS[2] quota counter for the period, KEYS[3] usage bucket hash.
// ARGV: now_us, emission_us, tau_us, quota (-1 = unlimited), quota_ttl_s, seed_used, bucket_ttl_s,
// deadline (Redis server time, unix µs).
// Returns {verdict (0 admitted, 1 rate, 2 quota, 3 too late), retry_us, used_after, tat_minus_now}.
//
// The first count of a bucket stamps it with `gen`, the server time: a Redis that lost its data
// (restarted without persistence, failed over to an empty replica) starts the bucket again under
// a new `gen`, and the meter writes that incarnation as a row of its own instead of ignoring its
// smaller absolute values as a stale snapshot of the old one.
//
// The deadline makes a timeout exact: a script that only runs after the gateway stopped waiting
// (Redis stalled, the command queued) changes nothing, so a request answered 503 or admitted by
// the fail-open fallback is never also counted here.
const ADMIT_LUA: &str = r"
local clock = redis.call('TIME')
if tonumber(clock[1]) * 1000000 + tonumber(clock[2]) > tonumber(ARGV[8]) then
  return {3, 0, 0, 0}
end
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + t
if new_tat - now > tau then
  local used = tonumber(redis.call('GET', KEYS[2]) or ARGV[6])
  return {1, new_tat - now - tau, used, tat - now}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[6], 'EX', ARGV[5])
end
local used = tonumber(redis.call('GET', KEYS[2]))
if quota >= 0 and used >= quota then
  return {2, 0, used, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
used = redis.call('INCR', KEYS[2])
if redis.call('HINCRBY', KEYS[3], 'admitted', 1) == 1 then
  redis.call('HSET', KEYS[3], 'gen', string.format('%.0f', tonumber(clock[1]) * 1000000 + tonumber(clock[2])))
end
redis.call('EXPIRE', KEYS[3], ARGV[7])
return {0, 0, used, new_tat - now}
";

/// The values of `FIELDS` in one bucket hash, as HMGET answers them.
type HashFields = Vec<Option<i64>>;

const FIELDS: [&str; 9] = ["admitted", "s2", "s3", "s4", "s5", "bytes_in", "bytes_out", "latency_ms", "gen"];
const BUCKET_TTL_S: i64 = 7 * 86_400;
/// Interval between full sweeps of the shared dirty sets (catches buckets of crashed gateways).
const SWEEP_SECONDS: i64 = 60;
/// Buckets per flush pipeline.
const BATCH: usize = 256;
/// Flush pipelines in flight at once.
const BATCH_CONCURRENCY: usize = 32;
/// Redirections (MOVED/ASK) and reconnections a cluster request may go through.
const CLUSTER_RETRIES: u32 = 3;

/// A connection to one Redis server or to a Redis Cluster. Both multiplex every caller over
/// one socket per node and reconnect on their own; the cluster one also follows the slot map
/// (MOVED/ASK) and routes each command by its key.
#[derive(Clone)]
enum Conn {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Redis-backed counters shared by every gateway.
///
/// On Redis Cluster every command and pipeline must stay within one hash slot (redis-rs routes
/// a pipeline by its first key and refuses one that crosses slots). The admission script and
/// the usage buckets only touch keys tagged `{s<subscription>}`, so they are one slot per
/// subscription; the shared dirty set of an hour has a slot of its own and is written in a
/// separate round trip (once per bucket and gateway) before the first count.
pub struct RedisCounters {
    conn: Conn,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    /// Post-response statistics, aggregated locally and added to Redis at each flush (they are
    /// not billable; the admitted count is written by the admission script itself).
    pending: IdMap<BucketId, Arc<Bucket>>,
    /// The hour of the last admission, to prune `known_dirty` once an hour.
    last_hour: AtomicI64,
    /// Buckets this gateway has already put in a dirty set (later requests skip the SADD), each
    /// with a flag: counted in since the last flush.
    known_dirty: IdMap<BucketId, AtomicBool>,
    /// Unix seconds of the last full sweep of the dirty sets.
    last_sweep: AtomicI64,
    /// Redis server time minus this host's time, µs, measured at connect (deadlines are in
    /// Redis's time).
    clock_offset_us: i64,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisCounters(prefix={}, cluster={})", self.prefix, self.is_cluster())
    }
}

impl RedisCounters {
    /// Connect to `url`; every key starts with `prefix`; no command waits longer than `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<RedisCounters, CounterError> {
        let client = redis::Client::open(url)?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(timeout * 2, redis::aio::ConnectionManager::new_with_config(client, cfg))
            .await
            .map_err(|_| CounterError::Timeout)??;
        Self::start(Conn::Single(conn), prefix, timeout).await
    }

    /// Connect to the Redis Cluster that `seeds` (node URLs, any subset of the cluster) belong
    /// to; the rest is discovered from the cluster's slot map.
    ///
    /// The admission deadline is computed from the clock offset of one node, measured here: the
    /// nodes' clocks are assumed to agree to well within the timeout (NTP-synchronised hosts).
    pub async fn connect_cluster(seeds: &[&str], prefix: &str, timeout: Duration) -> Result<RedisCounters, CounterError> {
        // Few retries: enough to follow MOVED/ASK during a resharding or a failover; a request
        // retried after its connection dropped could run the admission script twice.
        let client = redis::cluster::ClusterClient::builder(seeds.iter().copied())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(CLUSTER_RETRIES)
            .build()?;
        // Connecting reads the slot map and opens one connection per node: a few round trips.
        let conn = tokio::time::timeout(timeout * 4, client.get_async_connection()).await.map_err(|_| CounterError::Timeout)??;
        Self::start(Conn::Cluster(conn), prefix, timeout).await
    }

    /// Load the admission script (on every node of a cluster) and measure the clock offset.
    async fn start(conn: Conn, prefix: &str, timeout: Duration) -> Result<RedisCounters, CounterError> {
        let mut c = conn.clone();
        // Load the script up front so the first request does not pay a NOSCRIPT round trip.
        tokio::time::timeout(timeout * 4, redis::cmd("SCRIPT").arg("LOAD").arg(ADMIT_LUA).query_async::<String>(&mut c))
            .await
            .map_err(|_| CounterError::Timeout)??;
        let before = wall_us();
        let (secs, micros): (i64, i64) =
            tokio::time::timeout(timeout * 4, redis::cmd("TIME").query_async(&mut c)).await.map_err(|_| CounterError::Timeout)??;
        let clock_offset_us = secs * 1_000_000 + micros - (before + wall_us()) / 2;
        Ok(RedisCounters {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            script: redis::Script::new(ADMIT_LUA),
            pending: IdMap::default(),
            last_hour: AtomicI64::new(i64::MIN),
            known_dirty: IdMap::default(),
            last_sweep: AtomicI64::new(0),
            clock_offset_us,
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Add requests admitted elsewhere (a gateway's fail-open fallback during an outage) to a
    /// subscription's shared quota counter for the period starting at `period_start`. A counter
    /// that does not exist yet is left alone: it is seeded from the database, where the meter
    /// has written (or will write) those requests.
    pub async fn add_used(&self, sub_id: i64, period_start: i64, n: i64) -> Result<(), CounterError> {
        let key = format!("{}:{{s{}}}:q:{}", self.prefix, sub_id, period_start);
        let mut conn = self.conn.clone();
        let script =
            redis::Script::new("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0");
        tokio::time::timeout(self.timeout, script.key(key).arg(n).invoke_async::<i64>(&mut conn))
            .await
            .map_err(|_| CounterError::Timeout)??;
        Ok(())
    }

    /// Deadline in Redis's own time (`TIME`) for an admission sent now: three quarters of the
    /// timeout, so that a script run just before it still gets its reply back before the gateway
    /// gives up. Real time, not the injected clock: Redis has no other.
    fn script_deadline_us(&self) -> i64 {
        wall_us() + self.clock_offset_us + i64::try_from((self.timeout * 3 / 4).as_micros()).unwrap_or(i64::MAX / 2)
    }

    fn bucket_key(&self, b: &BucketId) -> String {
        format!("{}:{{s{}}}:u:{}:{}:{}", self.prefix, b.sub_id, b.key_id, b.api_id, b.hour)
    }

    fn dirty_key(&self, hour: i64) -> String {
        format!("{}:dirty:{}", self.prefix, hour)
    }

    pub(super) async fn admit(&self, a: &Admission) -> Result<Decision, CounterError> {
        let bucket = a.bucket();
        // Once an hour: forget flushed buckets of earlier hours. A bucket still flagged is kept
        // until it is flushed, however far the clock has moved.
        if self.last_hour.swap(bucket.hour, Ordering::Relaxed) != bucket.hour {
            self.known_dirty.retain(|b, flag| b.hour >= bucket.hour - 3600 || flag.load(Ordering::Acquire));
        }
        // The bucket is flagged for the next flush only AFTER the script counted in it: flagged
        // before, a flush running in between would read Redis without this count and clear the
        // flag, leaving the count for the slow full sweep.
        let first_in_bucket = !self.known_dirty.contains_key(&bucket);
        let tag = format!("{}:{{s{}}}", self.prefix, a.sub_id);
        let quota_ttl = (a.period.end - a.now_us / 1_000_000).max(1) + 86_400;
        let member = format!("{}:{}:{}:{}", a.sub_id, a.key_id, a.api_id, bucket.hour);
        let mut conn = self.conn.clone();
        let mut inv = self.script.prepare_invoke();
        inv.key(format!("{tag}:tat"))
            .key(format!("{tag}:q:{}", a.period.start))
            .key(self.bucket_key(&bucket))
            .arg(a.now_us)
            .arg(a.emission_us())
            .arg(a.tau_us())
            .arg(a.quota.unwrap_or(-1))
            .arg(quota_ttl)
            .arg(a.seed_used)
            .arg(BUCKET_TTL_S)
            .arg(self.script_deadline_us());
        let mut pipe = redis::pipe();
        // The dirty-set entry is written before the first count of a bucket so a flusher on any
        // gateway finds the bucket even if this gateway dies right after the script ran. Same
        // round trip as the script on one node; on a cluster the set lives in another slot, so
        // it goes first in a round trip of its own (once per bucket and gateway).
        let mut dirty_first = None;
        if first_in_bucket {
            pipe.cmd("SADD").arg(self.dirty_key(bucket.hour)).arg(&member).ignore();
            pipe.cmd("EXPIRE").arg(self.dirty_key(bucket.hour)).arg(BUCKET_TTL_S).ignore();
            if self.is_cluster() {
                dirty_first = Some(std::mem::replace(&mut pipe, redis::pipe()));
            }
        }
        pipe.invoke_script(&inv);
        let fut = async {
            if let Some(d) = &dirty_first {
                d.query_async::<()>(&mut conn).await?;
            }
            match pipe.query_async::<(Vec<i64>,)>(&mut conn).await {
                Err(e) if is_noscript(&e) => {
                    redis::cmd("SCRIPT").arg("LOAD").arg(ADMIT_LUA).query_async::<String>(&mut conn).await?;
                    pipe.query_async::<(Vec<i64>,)>(&mut conn).await
                }
                other => other,
            }
        };
        let (r,) = tokio::time::timeout(self.timeout, fut).await.map_err(|_| CounterError::Timeout)??;
        match self.known_dirty.get(&bucket) {
            Some(flag) => flag.store(true, Ordering::Release),
            None => {
                self.known_dirty.insert(bucket, AtomicBool::new(true));
            }
        }
        if r.len() < 4 {
            return Err(CounterError::Redis(redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "admission script reply"))));
        }
        let (verdict, retry_us, used, tat_minus_now) = (r[0], r[1], r[2], r[3]);
        if verdict == 3 {
            return Err(CounterError::Timeout);
        }
        let limits = limit_state(a, tat_minus_now, used);
        let verdict = match verdict {
            0 => Verdict::Admitted,
            1 => Verdict::RateLimited { retry_after: ((retry_us + 999_999) / 1_000_000).max(1) },
            _ => Verdict::QuotaExceeded { retry_after: limits.quota_reset.max(1) },
        };
        Ok(Decision { verdict, limits, bucket })
    }

    pub(super) fn record(&self, id: &BucketId, o: &Outcome) {
        self.pending.entry(*id).or_default().record(o);
    }

    /// Push pending statistics, then read the absolute values of the buckets this gateway
    /// counted in since the last call; every `SWEEP_SECONDS` (and when `hours` is given) also of
    /// every bucket in the shared dirty sets of those hours, which catches what a crashed gateway
    /// counted.
    pub(super) async fn snapshot(&self, now: i64, sweep_hours: Option<&[i64]>) -> Result<Vec<UsageRow>, CounterError> {
        let hour = turnpike_store::clock::hour_start(now);
        let default_sweep = [hour - 3600, hour];
        let sweep: Option<Vec<i64>> = match sweep_hours {
            Some(h) => Some(h.to_vec()),
            None if now - self.last_sweep.load(Ordering::Relaxed) >= SWEEP_SECONDS => Some(default_sweep.to_vec()),
            None => None,
        };
        let mine: Vec<BucketId> = self.known_dirty.iter().filter(|e| e.value().swap(false, Ordering::AcqRel)).map(|e| *e.key()).collect();
        let result = self.snapshot_inner(sweep.as_deref().unwrap_or(&[]), &mine).await;
        match &result {
            Ok(_) if sweep.is_some() => self.last_sweep.store(now, Ordering::Relaxed),
            Ok(_) => {}
            Err(_) => {
                // Keep them for the next attempt.
                self.remark_ids(&mine);
            }
        }
        result
    }

    pub(super) fn remark_ids(&self, ids: &[BucketId]) {
        for id in ids {
            match self.known_dirty.get(id) {
                Some(f) => f.store(true, Ordering::Release),
                None => {
                    self.known_dirty.insert(*id, AtomicBool::new(true));
                }
            }
        }
    }

    async fn snapshot_inner(&self, sweep_hours: &[i64], mine: &[BucketId]) -> Result<Vec<UsageRow>, CounterError> {
        let mut hours: Vec<i64> = sweep_hours.to_vec();
        hours.sort_unstable();
        hours.dedup();
        let mut ids: std::collections::HashSet<BucketId> = mine.iter().copied().collect();
        ids.extend(self.push_pending().await?);
        ids.extend(self.dirty_ids(&hours).await?);
        let mut rows = self.read_rows(&ids.into_iter().collect::<Vec<_>>()).await?;
        // Every gateway writes these rows under the same source, each in one transaction: in
        // one order, so two concurrent flushes wait for each other instead of deadlocking.
        rows.sort_unstable_by_key(|r| (r.key_id, r.api_id, r.hour));
        Ok(rows)
    }

    /// Add the status, byte and latency figures noted since the last snapshot to their Redis
    /// buckets (the admitted count is already there, from admission); returns their ids.
    async fn push_pending(&self) -> Result<Vec<BucketId>, CounterError> {
        let pending: Vec<(BucketId, Arc<Bucket>)> = self.pending.iter().map(|e| (*e.key(), e.value().clone())).collect();
        self.pending.retain(|_, _| false);
        if !pending.is_empty() {
            let _: Vec<(_, ())> = self
                .in_batches(batches(&pending, self.is_cluster(), |(id, _)| id.sub_id), |batch| {
                    let mut pipe = redis::pipe();
                    for (id, b) in batch {
                        let key = self.bucket_key(id);
                        let row = b.row(id);
                        for (field, v) in FIELDS[1..].iter().zip([
                            row.status_2xx,
                            row.status_3xx,
                            row.status_4xx,
                            row.status_5xx,
                            row.bytes_in,
                            row.bytes_out,
                            row.latency_ms_sum,
                        ]) {
                            if v != 0 {
                                pipe.cmd("HINCRBY").arg(&key).arg(*field).arg(v).ignore();
                            }
                        }
                        pipe.cmd("EXPIRE").arg(&key).arg(BUCKET_TTL_S).ignore();
                    }
                    pipe
                })
                .await?;
        }
        Ok(pending.into_iter().map(|(id, _)| id).collect())
    }

    /// The buckets any gateway marked dirty in `hours`.
    async fn dirty_ids(&self, hours: &[i64]) -> Result<Vec<BucketId>, CounterError> {
        let mut conn = self.conn.clone();
        let mut ids = Vec::new();
        for hour in hours {
            let members: Vec<String> =
                tokio::time::timeout(self.timeout, redis::cmd("SMEMBERS").arg(self.dirty_key(*hour)).query_async(&mut conn))
                    .await
                    .map_err(|_| CounterError::Timeout)??;
            ids.extend(members.iter().filter_map(|m| {
                let mut it = m.split(':').map(|p| p.parse::<i64>().ok());
                Some(BucketId { sub_id: it.next()??, key_id: it.next()??, api_id: it.next()??, hour: it.next()?? })
            }));
        }
        Ok(ids)
    }

    /// The usage rows of buckets `ids` as Redis holds them (buckets without an admitted request
    /// are left out).
    async fn read_rows(&self, ids: &[BucketId]) -> Result<Vec<UsageRow>, CounterError> {
        let read: Vec<(Vec<BucketId>, Vec<HashFields>)> = self
            .in_batches(batches(ids, self.is_cluster(), |id| id.sub_id), |batch| {
                let mut pipe = redis::pipe();
                for id in batch {
                    pipe.cmd("HMGET").arg(self.bucket_key(id)).arg(&FIELDS[..]);
                }
                pipe
            })
            .await?;
        let mut rows = Vec::new();
        for (id, v) in read.iter().flat_map(|(batch, vals)| batch.iter().zip(vals)) {
            let g = |i: usize| v.get(i).copied().flatten().unwrap_or(0);
            if g(0) == 0 {
                continue; // rejected request: dirty entry without a count
            }
            rows.push(UsageRow {
                key_id: id.key_id,
                api_id: id.api_id,
                subscription_id: id.sub_id,
                hour: id.hour,
                admitted: g(0),
                status_2xx: g(1),
                status_3xx: g(2),
                status_4xx: g(3),
                status_5xx: g(4),
                bytes_in: g(5),
                bytes_out: g(6),
                latency_ms_sum: g(7),
                generation: g(8),
            });
        }
        Ok(rows)
    }

    /// Run one pipeline per batch, up to `BATCH_CONCURRENCY` at a time (a cluster's slots live
    /// on different nodes, which then work in parallel); each answer comes back with its batch.
    async fn in_batches<T, R: redis::FromRedisValue>(
        &self,
        batches: Vec<Vec<T>>,
        build: impl Fn(&[T]) -> redis::Pipeline,
    ) -> Result<Vec<(Vec<T>, R)>, CounterError> {
        use futures_util::{StreamExt, TryStreamExt};
        let jobs = batches.into_iter().map(|batch| {
            let pipe = build(&batch);
            let mut conn = self.conn.clone();
            async move {
                let r =
                    tokio::time::timeout(self.timeout * 4, pipe.query_async::<R>(&mut conn)).await.map_err(|_| CounterError::Timeout)??;
                Ok::<_, CounterError>((batch, r))
            }
        });
        futures_util::stream::iter(jobs).buffer_unordered(BATCH_CONCURRENCY).try_collect().await
    }

    /// One node answers; on a cluster every master the client is connected to answers PING and
    /// a node says `cluster_state:ok`. The second check is needed: a PING fanned out by
    /// redis-rs skips a master whose connection is gone, while the cluster itself declares the
    /// state failed once a master has been unreachable for `cluster-node-timeout`.
    pub(super) async fn ping(&self) -> Result<(), CounterError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map_err(|_| CounterError::Timeout)??;
        if self.is_cluster() {
            let info: String = tokio::time::timeout(self.timeout, redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn))
                .await
                .map_err(|_| CounterError::Timeout)??;
            if !info.lines().any(|l| l.trim_end() == "cluster_state:ok") {
                return Err(CounterError::ClusterDown);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_batches_mix_subscriptions_on_one_node_and_never_on_a_cluster() {
        // 600 buckets of 3 subscriptions (0: 400, 1: 150, 2: 50), as (sub_id, bucket no.).
        let items: Vec<(i64, usize)> = (0..600).map(|i| (if i < 400 { 0 } else { 1 + i64::from(i >= 550) }, i)).collect();
        let single = batches(&items, false, |(s, _)| *s);
        assert_eq!(single.iter().map(Vec::len).collect::<Vec<_>>(), [256, 256, 88], "one node: as before, 256 per pipeline");
        assert_eq!(single.concat(), items, "in order, nothing lost");

        let mut cluster = batches(&items, true, |(s, _)| *s);
        for b in &cluster {
            assert!(b.iter().all(|(s, _)| *s == b[0].0), "one subscription (hash slot) per pipeline");
            assert!(b.len() <= BATCH);
        }
        cluster.sort_by_key(|b| (b[0].0, b[0].1));
        assert_eq!(cluster.iter().map(Vec::len).collect::<Vec<_>>(), [256, 144, 150, 50]);
        let mut all = cluster.concat();
        all.sort_by_key(|(_, i)| *i);
        assert_eq!(all, items, "every bucket exactly once");
        assert!(batches::<(i64, usize)>(&[], true, |(s, _)| *s).is_empty());
        assert!(batches::<(i64, usize)>(&[], false, |(s, _)| *s).is_empty());
    }
}
