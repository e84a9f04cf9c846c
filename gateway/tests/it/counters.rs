use std::sync::Arc;
use std::time::Duration;

use turnpike_gateway::counters::{Admission, Verdict};
use turnpike_gateway::{Counters, LocalCounters, RedisCounters};
use turnpike_store::period::Period;

async fn each(test: &str) -> Vec<Counters> {
    let mut v = vec![Counters::Local(Arc::new(LocalCounters::new("proc-test")))];
    if let Some((url, prefix)) = turnpike_testkit::redis_prefix(test).await {
        v.push(Counters::Redis(Arc::new(RedisCounters::connect(&url, &prefix, Duration::from_secs(2)).await.expect("redis"))));
    }
    v
}

fn admission(sub_id: i64, now_us: i64, quota: Option<i64>) -> Admission {
    Admission {
        sub_id,
        key_id: 7,
        api_id: 3,
        now_us,
        rate: 10,
        burst: 5,
        quota,
        period: Period { start: 1_790_000_000 - 3600, end: 1_790_000_000 + 86_400 },
        seed_used: 0,
    }
}

#[tokio::test]
async fn burst_then_refill_then_quota_and_rejections_consume_nothing() {
    for c in each("burst_then_refill_then_quota").await {
        println!("counters: {}", c.kind());
        let t0 = 1_790_000_000_000_000;
        for i in 0..5 {
            let d = c.admit(&admission(1, t0, Some(8))).await.unwrap();
            assert_eq!(d.verdict, Verdict::Admitted, "request {i}");
            assert_eq!(d.limits.burst_remaining, 4 - i);
            assert_eq!(d.limits.quota_remaining, 8 - (i + 1));
        }
        let d = c.admit(&admission(1, t0, Some(8))).await.unwrap();
        assert_eq!(d.verdict, Verdict::RateLimited { retry_after: 1 });
        // 100 ms later one request fits again (10/s).
        let d = c.admit(&admission(1, t0 + 100_000, Some(8))).await.unwrap();
        assert_eq!(d.verdict, Verdict::Admitted);
        // Much later the burst is full, and the quota (8) allows exactly 2 more.
        let later = t0 + 10_000_000;
        assert_eq!(c.admit(&admission(1, later, Some(8))).await.unwrap().verdict, Verdict::Admitted);
        assert_eq!(c.admit(&admission(1, later, Some(8))).await.unwrap().verdict, Verdict::Admitted);
        let d = c.admit(&admission(1, later, Some(8))).await.unwrap();
        assert!(matches!(d.verdict, Verdict::QuotaExceeded { .. }), "{d:?}");
        let rows = c.snapshot(later / 1_000_000).await.unwrap();
        let admitted: i64 = rows.iter().filter(|r| r.subscription_id == 1).map(|r| r.admitted).sum();
        assert_eq!(admitted, 8, "only admitted requests are counted");
    }
}
