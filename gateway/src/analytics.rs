//! Owners' analytics in the gateway: each answered request's status class and latency, by key ×
//! API × operation × hour, with a latency histogram ([`turnpike_store::histogram`]).
//!
//! Kept in process in both counter modes, under a source name of its own per gateway instance:
//! the histograms would cost 272 counters per bucket in Redis, and analytics are not billable, so
//! each gateway writes the absolute values of its own rows (additive over instances and
//! idempotent by construction, like `usage_hourly`). What a gateway killed with SIGKILL had not
//! flushed yet is lost to analytics only; the billable count (`usage_hourly`) is untouched by
//! any of this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use turnpike_store::histogram::{bucket_of, BUCKETS};
use turnpike_store::{AnalyticsRow, Api, Store, Traffic, Visibility, UNMATCHED};

use crate::counters::{BucketId, IdMap};
use crate::operations::{OpId, Operations};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Cell {
    key_id: i64,
    api_id: i64,
    hour: i64,
    op: OpId,
}

#[derive(Debug)]
struct Counts {
    dirty: AtomicBool,
    /// 1xx–2xx, 3xx, 4xx, 5xx.
    by_class: [AtomicI64; 4],
    latency_us: AtomicI64,
    histogram: Box<[AtomicU64; BUCKETS]>,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            dirty: AtomicBool::new(false),
            by_class: Default::default(),
            latency_us: AtomicI64::new(0),
            histogram: Box::new([(); BUCKETS].map(|_| AtomicU64::new(0))),
        }
    }

    fn add(&self, status: u16, latency_us: u64) {
        self.by_class[crate::phases::meter::status_class(status)].fetch_add(1, Ordering::Relaxed);
        self.latency_us.fetch_add(i64::try_from(latency_us).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.histogram[bucket_of(latency_us)].fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Release);
    }

    fn row(&self, cell: &Cell, operation: &str) -> AnalyticsRow {
        let [s2, s3, s4, s5] = [0, 1, 2, 3].map(|i| self.by_class[i].load(Ordering::Relaxed));
        let latency = self
            .histogram
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.load(Ordering::Relaxed);
                (c > 0).then(|| (i32::try_from(i).unwrap_or(i32::MAX), i64::try_from(c).unwrap_or(i64::MAX)))
            })
            .collect();
        AnalyticsRow {
            key_id: cell.key_id,
            api_id: cell.api_id,
            operation: operation.to_owned(),
            hour: cell.hour,
            traffic: Traffic {
                requests: s2 + s3 + s4 + s5,
                status_2xx: s2,
                status_3xx: s3,
                status_4xx: s4,
                status_5xx: s5,
                latency_us_sum: self.latency_us.load(Ordering::Relaxed),
            },
            latency,
        }
    }
}

/// Operation labels by id (0: [`UNMATCHED`]), the same id for the same label across reloads.
#[derive(Debug)]
struct Labels {
    ids: HashMap<Box<str>, OpId>,
    names: Vec<Arc<str>>,
}

impl Labels {
    fn id(&mut self, label: &str) -> OpId {
        if let Some(id) = self.ids.get(label) {
            return *id;
        }
        let id = OpId::try_from(self.names.len()).unwrap_or(0);
        self.names.push(Arc::from(label));
        self.ids.insert(label.into(), id);
        id
    }
}

/// The gateway's analytics accumulator.
#[derive(Debug)]
pub(crate) struct Analytics {
    source: String,
    labels: Mutex<Labels>,
    /// Compiled documents by API, with the API's `updated_at` they were compiled from.
    compiled: Mutex<HashMap<i64, (i64, Arc<Operations>)>>,
    cells: IdMap<Cell, Counts>,
}

impl Analytics {
    pub(crate) fn new() -> Analytics {
        let labels = Labels { ids: HashMap::from([(UNMATCHED.into(), 0)]), names: vec![Arc::from(UNMATCHED)] };
        Analytics {
            source: format!("analytics-{:016x}", rand::random::<u64>()),
            labels: Mutex::new(labels),
            compiled: Mutex::new(HashMap::new()),
            cells: IdMap::default(),
        }
    }

    /// The source name of this gateway's rows.
    /// An operation's label (`GET /repos/{owner}/{repo}`, or `unmatched`), for exported spans.
    pub(crate) fn label(&self, op: OpId) -> Arc<str> {
        let labels = self.labels.lock().unwrap_or_else(|p| p.into_inner());
        labels.names.get(op as usize).cloned().unwrap_or_else(|| Arc::from(UNMATCHED))
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// One answered request of `bucket`'s key and API.
    pub(crate) fn record(&self, bucket: &BucketId, op: OpId, status: u16, latency_us: u64) {
        let cell = Cell { key_id: bucket.key_id, api_id: bucket.api_id, hour: bucket.hour, op };
        if let Some(c) = self.cells.get(&cell) {
            return c.add(status, latency_us);
        }
        self.cells.entry(cell).or_insert_with(Counts::new).add(status, latency_us);
    }

    /// Absolute values of the cells that changed since the last snapshot.
    pub(crate) fn snapshot(&self) -> Vec<AnalyticsRow> {
        let names = self.labels.lock().unwrap_or_else(|p| p.into_inner()).names.clone();
        self.cells
            .iter()
            .filter(|e| e.value().dirty.swap(false, Ordering::AcqRel))
            .map(|e| e.value().row(e.key(), names.get(e.key().op as usize).map_or(UNMATCHED, |n| n)))
            .collect()
    }

    /// Writing these rows failed: take them again next time.
    pub(crate) fn remark(&self, rows: &[AnalyticsRow]) {
        let labels = self.labels.lock().unwrap_or_else(|p| p.into_inner());
        for r in rows {
            let op = labels.ids.get(r.operation.as_str()).copied().unwrap_or(0);
            if let Some(c) = self.cells.get(&Cell { key_id: r.key_id, api_id: r.api_id, hour: r.hour, op }) {
                c.dirty.store(true, Ordering::Release);
            }
        }
    }

    /// Forget flushed cells of hours before `before_hour`.
    pub(crate) fn prune(&self, before_hour: i64) {
        self.cells.retain(|c, v| c.hour >= before_hour || v.dirty.load(Ordering::Acquire));
    }

    /// The compiled operations of every routable API with a document. A document is read and
    /// compiled again only when its API changed; one that does not parse is logged and its
    /// calls count as unmatched.
    pub(crate) async fn operations(&self, store: &Store, apis: &[Api]) -> HashMap<i64, Arc<Operations>> {
        let mut out = HashMap::new();
        for api in apis.iter().filter(|a| a.openapi.is_some() && a.visibility != Visibility::Draft) {
            let cached = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&api.id).cloned();
            if let Some((_, ops)) = cached.filter(|(at, _)| *at == api.updated_at) {
                out.insert(api.id, ops);
                continue;
            }
            let doc = match store.api_document(api.id).await {
                Ok(Some(doc)) => doc,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(api = %api.slug, error = %e, "could not read the OpenAPI document; calls count as unmatched");
                    continue;
                }
            };
            let compiled = Operations::compile(&doc, |l| self.labels.lock().unwrap_or_else(|p| p.into_inner()).id(l));
            match compiled {
                Ok(ops) => {
                    tracing::info!(api = %api.slug, operations = ops.len(), "operations compiled for attribution");
                    let ops = Arc::new(ops);
                    self.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(api.id, (api.updated_at, ops.clone()));
                    out.insert(api.id, ops);
                }
                Err(e) => {
                    tracing::warn!(api = %api.slug, error = %e, "OpenAPI document is not JSON with `paths`; calls count as unmatched")
                }
            }
        }
        out
    }
}
