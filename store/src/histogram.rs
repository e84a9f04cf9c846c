//! Latency histograms: fixed-size, log-linear buckets over microseconds, mergeable by adding
//! bucket counts (so p50/p95/p99 of any range and any grouping come from summed stored buckets).
//!
//! Layout (HDR-style, [`SUB_BITS`] = 3): values 0–7 µs have a bucket each; every power of two
//! from 8 µs up is split into 8 equal sub-buckets, up to 2³⁶ µs (19 hours, the last bucket holds
//! everything above). That is [`BUCKETS`] = 272 buckets.
//!
//! **Error bound**: a percentile is reported as the midpoint of the bucket holding the value of
//! that rank, so it is within **1/16 (6.25 %) of the true value** (a bucket at or above 8 µs
//! spans at most 1/8 of its lower bound; below 8 µs buckets are exact).

/// Linear sub-buckets per power of two: 2^3 = 8.
pub const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Values at or above 2^MAX_EXP µs share the last bucket.
const MAX_EXP: u32 = 36;
/// Number of buckets.
pub const BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS) as u64 * SUB) as usize;
/// The stated relative error of a percentile, as a fraction: 1/16.
pub const RELATIVE_ERROR: f64 = 1.0 / 16.0;

/// The bucket of a latency in microseconds.
pub fn bucket_of(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let us = us.min((1u64 << MAX_EXP) - 1);
    let shift = 63 - us.leading_zeros() - SUB_BITS;
    let sub = (us >> shift) - SUB;
    (SUB + u64::from(shift) * SUB + sub) as usize
}

/// The values `[low, high)` a bucket holds.
pub fn bucket_bounds(bucket: usize) -> (u64, u64) {
    let b = bucket as u64;
    if b < SUB {
        return (b, b + 1);
    }
    let shift = (b - SUB) / SUB;
    let low = (SUB + (b - SUB) % SUB) << shift;
    (low, low + (1 << shift))
}

/// The value a bucket stands for: its midpoint (exact for the one-value buckets).
pub fn bucket_value(bucket: usize) -> u64 {
    let (low, high) = bucket_bounds(bucket);
    low + (high - low) / 2
}

/// p50, p95 and p99 in microseconds (`None`: no requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

/// A merged histogram: counts by bucket index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]) }
    }
}

impl Histogram {
    /// Add `count` values to `bucket` (out-of-range buckets, from a corrupt row, are ignored).
    pub fn add(&mut self, bucket: usize, count: u64) {
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += count;
        }
    }

    /// Record one latency.
    pub fn record(&mut self, us: u64) {
        self.add(bucket_of(us), 1);
    }

    /// Values recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value of nearest rank `ceil(n × permille / 1000)` (the rank-th smallest), as its
    /// bucket's midpoint; `None` when empty.
    pub fn percentile(&self, permille: u64) -> Option<u64> {
        let n = self.total();
        if n == 0 {
            return None;
        }
        let rank = (n * permille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None
    }

    /// p50, p95 and p99.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles { p50: self.percentile(500), p95: self.percentile(950), p99: self.percentile(990) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_in_order() {
        assert_eq!(BUCKETS, 272);
        let mut expect_low = 0;
        for b in 0..BUCKETS {
            let (low, high) = bucket_bounds(b);
            assert_eq!(low, expect_low, "bucket {b}");
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(high - 1), b);
            // The stated bound: a bucket spans at most 1/8 of its lower bound above 8 µs.
            assert!(low < 8 || (high - low) * 8 <= low, "bucket {b}");
            expect_low = high;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            rng_seed: proptest::test_runner::RngSeed::Fixed(18),
            ..proptest::test_runner::Config::with_cases(256)
        })]
        #[test]
        fn midpoint_is_within_the_stated_error(us in 0u64..(1 << 36)) {
            let est = bucket_value(bucket_of(us)) as f64;
            proptest::prop_assert!((est - us as f64).abs() <= us as f64 * RELATIVE_ERROR, "{us} -> {est}");
        }
    }
}
