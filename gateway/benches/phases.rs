//! Criterion benches of the gateway's own per-request work, phase by phase:
//! `cargo bench -p turnpike-gateway`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use turnpike_gateway::counters::Admission;
use turnpike_gateway::{Counters, LocalCounters, RouteTable};
use turnpike_store::domain::ApiKey;
use turnpike_store::period::Period;
use turnpike_store::{Api, Upstream, Visibility};

fn apis(n: i64) -> Vec<Api> {
    (0..n)
        .map(|i| Api {
            id: i,
            slug: format!("api{i}"),
            name: String::new(),
            description: String::new(),
            route_prefix: format!("/api{i}/v1"),
            host: None,
            upstreams: vec![Upstream { url: "http://127.0.0.1:9/".into(), weight: 1 }],
            openapi: None,
            visibility: Visibility::Public,
            allow_query_key: false,
            updated_at: 0,
        })
        .collect()
}

fn route_match(c: &mut Criterion) {
    let table = RouteTable::build(&apis(50));
    c.bench_function("route match (50 APIs, last one)", |b| {
        b.iter(|| black_box(table.find(Some("gw.example"), black_box("/api49/v1/orders/42"))))
    });
}

fn key_verification(c: &mut Criterion) {
    let key = ApiKey::generate();
    let s = key.expose().to_owned();
    c.bench_function("key verify (format + checksum + sha256)", |b| b.iter(|| black_box(ApiKey::verify(black_box(&s)))));
    let mut typo = s.clone();
    typo.replace_range(20..21, if &s[20..21] == "A" { "B" } else { "A" });
    c.bench_function("key verify (bad checksum, refused)", |b| b.iter(|| black_box(ApiKey::verify(black_box(&typo)))));
}

fn limiter_step(c: &mut Criterion) {
    let counters = Counters::Local(std::sync::Arc::new(LocalCounters::new("bench")));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut now = 1_790_000_000_000_000i64;
    c.bench_function("limiter step (in process: GCRA + quota + count)", |b| {
        b.iter(|| {
            now += 1;
            let a = Admission {
                sub_id: 1,
                key_id: 1,
                api_id: 1,
                now_us: now,
                rate: 10_000_000,
                burst: 10_000_000,
                quota: Some(i64::MAX),
                period: Period { start: 0, end: i64::MAX },
                seed_used: 0,
            };
            black_box(rt.block_on(counters.admit(&a)).unwrap());
        })
    });
}

criterion_group!(benches, route_match, key_verification, limiter_step);
criterion_main!(benches);
