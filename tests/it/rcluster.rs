//! Redis Cluster: two real `turnpike gateway` processes on a three-master cluster of their own
//! (`redis-server` processes started here on free loopback ports) keep quotas and metering
//! exact, with subscriptions whose hash slots live on different masters, and through a SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use turnpike_store::domain::ApiKey;
use turnpike_store::Store;
use turnpike_testkit::TestDb;

use crate::cluster::{fire, settled_total, setup_with, GatewayProcess};
use crate::upstreams::Behaviour;

const PREFIX: &str = "rc";

/// A three-master Redis Cluster without replicas; the nodes are killed on drop.
struct RedisCluster {
    /// (client port, process); `None` once killed.
    nodes: Vec<(u16, Option<Child>)>,
    /// Which node's port serves each slot range (inclusive).
    slots: Vec<(u16, u16, u16)>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Start and form the cluster, or report a loud skip without `redis-server`/`redis-cli`.
    async fn start(test: &str) -> Option<RedisCluster> {
        for bin in ["redis-server", "redis-cli"] {
            if Command::new(bin).arg("--version").stdout(Stdio::null()).status().is_err() {
                turnpike_testkit::skip(bin, test, "not installed (apt-get install redis-server)");
                return None;
            }
        }
        let mut cluster = RedisCluster { nodes: Vec::new(), slots: Vec::new(), dir: tempfile::tempdir().unwrap() };
        let dir = cluster.dir.path().display().to_string();
        for pair in free_ports(6).chunks(2) {
            let (port, bus) = (pair[0], pair[1]);
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string(), "--bind", "127.0.0.1"])
                // A lost master fails the cluster after 3 s instead of 15 (not less: a node
                // starved of CPU on a busy test machine must not be declared failed).
                .args(["--cluster-node-timeout", "3000"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("{dir}/nodes-{port}.conf")])
                .args(["--save", "", "--appendonly", "no", "--dir", &dir])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            cluster.nodes.push((port, Some(child)));
        }
        for (port, _) in &cluster.nodes {
            wait_until(Duration::from_secs(10), &format!("redis-server on {port} answers"), || async move {
                let mut c = node_conn(*port).await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            })
            .await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &cluster.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create.args(["--cluster-replicas", "0", "--cluster-yes"]).output().expect("redis-cli --cluster create");
        assert!(out.status.success(), "cluster create: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for (port, _) in &cluster.nodes {
            wait_until(Duration::from_secs(20), &format!("node {port} reports cluster_state:ok"), || async move {
                let mut c = node_conn(*port).await.ok()?;
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await.ok()?;
                (info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")).then_some(())
            })
            .await;
        }
        cluster.slots = cluster.slot_map().await;
        Some(cluster)
    }

    /// `CLUSTER SLOTS` of the first node: (first slot, last slot, owner's port).
    async fn slot_map(&self) -> Vec<(u16, u16, u16)> {
        let mut c = node_conn(self.nodes[0].0).await.unwrap();
        let v: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await.unwrap();
        let int = |v: &redis::Value| match v {
            redis::Value::Int(i) => u16::try_from(*i).unwrap(),
            other => panic!("CLUSTER SLOTS: {other:?}"),
        };
        let mut map: Vec<(u16, u16, u16)> = v
            .iter()
            .map(|r| match &r[2] {
                redis::Value::Array(master) => (int(&r[0]), int(&r[1]), int(&master[1])),
                other => panic!("CLUSTER SLOTS: {other:?}"),
            })
            .collect();
        map.sort_unstable();
        assert_eq!(map.iter().map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1).sum::<u32>(), 16_384, "every slot served");
        map
    }

    /// The seed list for `TURNPIKE_REDIS_URL`.
    fn seeds(&self) -> String {
        self.nodes.iter().map(|(p, _)| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Port of the master serving `key`'s hash slot.
    async fn owner(&self, key: &str) -> u16 {
        let mut c = node_conn(self.nodes[0].0).await.unwrap();
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut c).await.unwrap();
        self.slots.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|r| r.2).unwrap()
    }

    /// Keys matching `pattern` held by each node (its own keyspace, not the cluster's).
    async fn keys_by_node(&self, pattern: &str) -> BTreeMap<u16, Vec<String>> {
        let mut out = BTreeMap::new();
        for (port, _) in &self.nodes {
            let mut c = node_conn(*port).await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut c).await.unwrap();
            out.insert(*port, keys);
        }
        out
    }

    /// `field` (`admitted`, `s2`, …) of every key id, summed over its usage buckets on every node.
    async fn bucket_sum_by_key(&self, field: &str) -> BTreeMap<i64, i64> {
        let mut out = BTreeMap::new();
        for (port, keys) in self.keys_by_node(&format!("{PREFIX}:*:u:*")).await {
            let mut c = node_conn(port).await.unwrap();
            for k in keys {
                let key_id: i64 = k.split(":u:").nth(1).and_then(|r| r.split(':').next()).unwrap().parse().unwrap();
                let v: Option<i64> = redis::cmd("HGET").arg(&k).arg(field).query_async(&mut c).await.unwrap();
                *out.entry(key_id).or_default() += v.unwrap_or(0);
            }
        }
        out
    }

    fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].1.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

/// `n` distinct free loopback ports (held together while chosen, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A plain (non-cluster) connection to one node.
async fn node_conn(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_multiplexed_async_connection().await
}

async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One key of its own subscription (app) on the shared API.
struct Tenant {
    key: ApiKey,
    key_id: i64,
    sub_id: i64,
}

/// Publish one API with a quota of `quota` per subscription, then add apps (one key each) until
/// there are at least `min` and their subscriptions' hash slots cover at least two masters.
async fn tenants(store: &Store, cluster: &RedisCluster, quota: i64, min: usize) -> Vec<Tenant> {
    let first = setup_with(store, quota, Behaviour::Named("ok")).await;
    let auth = store.key_auth(&first.key.hash()).await.unwrap().unwrap();
    let mut out = vec![Tenant { key: first.key, key_id: first.key_id, sub_id: sub_of(store, auth.app_id).await }];
    let mut masters = BTreeSet::new();
    masters.insert(cluster.owner(&format!("{PREFIX}:{{s{}}}:q", out[0].sub_id)).await);
    while out.len() < min || masters.len() < 2 {
        assert!(out.len() < 12, "12 subscriptions all hash to one master?");
        let app = store.create_app(auth.account_id, &format!("tenant{}", out.len()), 0).await.unwrap();
        store.subscribe_defaults(app.id, 0).await.unwrap();
        let key = ApiKey::generate();
        let rec = store.create_key(app.id, "k", &key, 0).await.unwrap();
        let sub_id = sub_of(store, app.id).await;
        masters.insert(cluster.owner(&format!("{PREFIX}:{{s{sub_id}}}:q")).await);
        out.push(Tenant { key, key_id: rec.id, sub_id });
    }
    out
}

async fn sub_of(store: &Store, app_id: i64) -> i64 {
    let subs = store.list_subscriptions(app_id).await.unwrap();
    assert_eq!(subs.len(), 1, "one subscription per app");
    subs[0].id
}

fn start_gateway(db_url: &str, cluster: &RedisCluster) -> GatewayProcess {
    GatewayProcess::start_with(
        db_url,
        &[("TURNPIKE_REDIS_URL", &cluster.seeds()), ("TURNPIKE_REDIS_CLUSTER", "true"), ("TURNPIKE_REDIS_PREFIX", PREFIX)],
    )
}

async fn readyz(g: &GatewayProcess) -> (u16, String) {
    let r = reqwest::get(format!("{}/readyz", g.ops)).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_redis_cluster_keep_quotas_and_metering_exact() {
    let test = "two_gateways_on_a_redis_cluster";
    let Some(cluster) = RedisCluster::start(test).await else { return };
    let Some(db) = TestDb::postgres(test).await else { return };
    let tenants = tenants(&db.store, &cluster, 1_000, 3).await;
    let g1 = start_gateway(&db.url, &cluster);
    let g2 = start_gateway(&db.url, &cluster);
    assert_eq!(readyz(&g1).await, (200, "ready".to_owned()), "readyz pings every master");
    // As after a failover to a node that never saw the script: the first admission on each
    // master meets NOSCRIPT and loads it again, without failing the request.
    for (port, _) in &cluster.nodes {
        let () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut node_conn(*port).await.unwrap()).await.unwrap();
    }
    let urls = vec![g1.url.clone(), g2.url.clone()];

    // 3,000 requests per key, every key at once, spread over both gateways.
    let loads: Vec<_> = tenants
        .iter()
        .map(|t| {
            let (urls, key) = (urls.clone(), t.key.expose().to_owned());
            tokio::spawn(async move { fire(&urls, &key, 3_000, 12).await })
        })
        .collect();
    for (t, load) in tenants.iter().zip(loads) {
        assert_eq!(load.await.unwrap(), (1_000, 2_000, 0), "key {}: a quota of 1,000 admits exactly 1,000", t.key_id);
    }

    // Each subscription's counters live on the master of its slot, and those are several.
    let quota_keys = cluster.keys_by_node(&format!("{PREFIX}:*:q:*")).await;
    let mut holders = BTreeSet::new();
    for t in &tenants {
        let owner = cluster.owner(&format!("{PREFIX}:{{s{}}}:q", t.sub_id)).await;
        let tag = format!("{PREFIX}:{{s{}}}:q:", t.sub_id);
        let on: Vec<u16> = quota_keys.iter().filter(|(_, ks)| ks.iter().any(|k| k.starts_with(&tag))).map(|(p, _)| *p).collect();
        assert_eq!(on, [owner], "subscription {}'s quota counter is on its slot's master only", t.sub_id);
        let k = quota_keys[&owner].iter().find(|k| k.starts_with(&tag)).unwrap();
        let used: i64 = redis::cmd("GET").arg(k).query_async(&mut node_conn(owner).await.unwrap()).await.unwrap();
        assert_eq!(used, 1_000, "{k}");
        holders.insert(owner);
    }
    assert!(holders.len() >= 2, "subscriptions spread over masters {holders:?}");
    // The hour's dirty set (a slot of its own) lists every bucket, for the crash sweep.
    let dirty = cluster.keys_by_node(&format!("{PREFIX}:dirty:*")).await;
    let (port, sets) = dirty.iter().find(|(_, ks)| !ks.is_empty()).expect("a dirty set");
    let members: Vec<String> = redis::cmd("SMEMBERS").arg(&sets[0]).query_async(&mut node_conn(*port).await.unwrap()).await.unwrap();
    for t in &tenants {
        assert!(members.iter().any(|m| m.starts_with(&format!("{}:{}:", t.sub_id, t.key_id))), "bucket of key {} in {members:?}", t.key_id);
    }

    // SIGTERM: each gateway's final flush pushes its response statistics (one pipeline per
    // slot) and writes the buckets' absolute values.
    g1.stop();
    g2.stop();
    let ok_in_redis = cluster.bucket_sum_by_key("s2").await;
    for t in &tenants {
        let got = db.store.key_usage_total(t.key_id).await.unwrap();
        assert_eq!((got.admitted, got.errors), (1_000, 0), "key {}: exactly the admitted requests in the database", t.key_id);
        assert_eq!(ok_in_redis.get(&t.key_id), Some(&1_000), "key {}: every 200 recorded in its buckets", t.key_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_gateway_on_a_redis_cluster_loses_no_admitted_count() {
    let test = "sigkill_of_a_gateway_on_a_redis_cluster";
    let Some(mut cluster) = RedisCluster::start(test).await else { return };
    let Some(db) = TestDb::postgres(test).await else { return };
    let tenants = tenants(&db.store, &cluster, 1_000_000, 3).await;
    let victim = start_gateway(&db.url, &cluster);
    let survivor = start_gateway(&db.url, &cluster);
    let both = vec![victim.url.clone(), survivor.url.clone()];
    // The last key is only ever sent to the victim: the survivor never counts in its bucket and
    // can only learn of it from the shared dirty set.
    let loads: Vec<_> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let urls = if i + 1 == tenants.len() { vec![victim.url.clone()] } else { both.clone() };
            let key = t.key.expose().to_owned();
            tokio::spawn(async move { fire(&urls, &key, 4_000, 8).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    victim.kill();
    let mut results = Vec::new();
    for load in loads {
        results.push(load.await.unwrap());
    }
    assert!(results.iter().all(|(ok, _, failed)| *ok > 0 && *failed > 0), "the kill happened mid-load: {results:?}");

    // The truth is what the cluster admitted, summed over every master.
    let in_redis = cluster.bucket_sum_by_key("admitted").await;
    for (t, (ok, _, failed)) in tenants.iter().zip(&results) {
        let n = in_redis.get(&t.key_id).copied().unwrap_or(0);
        assert!(n >= *ok as i64 && n <= (ok + failed) as i64, "key {}: {n} counted, {ok} seen admitted, {failed} failed", t.key_id);
    }
    let (shared, victim_only) = tenants.split_at(tenants.len() - 1);
    for t in shared {
        let want = in_redis[&t.key_id];
        assert_eq!(settled_total(&db.store, t.key_id, want).await, want, "key {}: the survivor flushed the dead one's counts", t.key_id);
    }
    // A gateway started now sweeps the last hours' shared dirty sets at start (then every 60 s)
    // and brings the bucket only the dead gateway knew to the database.
    let replacement = start_gateway(&db.url, &cluster);
    let t = &victim_only[0];
    let want = in_redis[&t.key_id];
    assert_eq!(settled_total(&db.store, t.key_id, want).await, want, "key {}: the sweep found the dead gateway's bucket", t.key_id);
    replacement.stop();

    // Readiness follows the cluster: a dead master makes the survivor not ready.
    assert_eq!(readyz(&survivor).await.0, 200);
    cluster.kill_node(1);
    let started = Instant::now();
    loop {
        let (status, body) = readyz(&survivor).await;
        if status == 503 {
            assert!(body.contains("counters"), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still {status} {body} with a master down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    survivor.kill();
}
