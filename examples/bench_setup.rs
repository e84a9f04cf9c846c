//! Prepares a database for `bench/run.sh`: one API at `/bench` in front of `UPSTREAM`, a plan
//! with limits far above the benchmark's rate, one developer app and `KEYS` keys. Prints the
//! first key on stdout (and all of them to `KEYS_FILE` if given).
//!
//! `cargo run --release --example bench_setup -- DATABASE_URL UPSTREAM_URL [KEYS] [KEYS_FILE]`

use std::io::Write;

use turnpike_store::clock::{Clock, SystemClock};
use turnpike_store::domain::{ApiKey, Email};
use turnpike_store::{NewPlan, Role, Store, Visibility};
use turnpike_testkit::{default_plan, publish};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (db, upstream) = (&args[1], &args[2]);
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let store = Store::connect(db).await?;
    store.migrate().await?;
    let now = SystemClock.now();
    let plan = NewPlan { unit_price_minor_per_1000: 1, ..default_plan("bench", 10_000_000, 10_000_000, Some(1_000_000_000_000)) };
    publish(&store, "bench", "Bench", &[(upstream.as_str(), 1)], Visibility::Public, &plan, now).await;
    let acc = store.create_account(&Email::parse("bench@example.com")?, "x", Role::Developer, now).await?;
    let app = store.create_app(acc.id, "bench", now).await?;
    store.subscribe_defaults(app.id, now).await?;
    let mut out: Option<std::io::BufWriter<std::fs::File>> =
        args.get(4).map(std::fs::File::create).transpose()?.map(std::io::BufWriter::new);
    let mut first = None;
    for i in 0..n {
        let key = ApiKey::generate();
        store.create_key(app.id, &format!("k{i}"), &key, now).await?;
        if let Some(f) = out.as_mut() {
            writeln!(f, "{}", key.expose())?;
        }
        first.get_or_insert(key);
    }
    if let Some(k) = first {
        println!("{}", k.expose());
    }
    Ok(())
}
