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

#[tokio::test]
async fn snapshots_carry_only_changed_buckets_and_failed_writes_come_back() {
    for c in each("snapshots_carry_only_changed_buckets").await {
        println!("counters: {}", c.kind());
        let t0 = 1_790_000_000_000_000;
        let now = t0 / 1_000_000;
        let mut a = admission(40, t0, None);
        c.admit(&a).await.unwrap();
        a.key_id = 8;
        c.admit(&a).await.unwrap();
        let first = c.snapshot(now).await.unwrap();
        assert_eq!(first.iter().filter(|r| r.subscription_id == 40).count(), 2);
        assert!(c.snapshot(now).await.unwrap().iter().all(|r| r.subscription_id != 40), "nothing changed, nothing to write");
        c.admit(&a).await.unwrap();
        let changed: Vec<_> = c.snapshot(now).await.unwrap().into_iter().filter(|r| r.subscription_id == 40).collect();
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].key_id, changed[0].admitted), (8, 2));
        // The database write failed: the same bucket is offered again.
        c.remark(&changed);
        let again: Vec<_> = c.snapshot(now).await.unwrap().into_iter().filter(|r| r.subscription_id == 40).collect();
        assert_eq!(again, changed);
    }
}
