//! The Redis cache adapter against raw `redis` commands on the same connection
//! kind, in the same run, on the server at `USERZ_REDIS_URL`:
//! - `incr`: the adapter (one `EVALSHA` of the create-aware script) vs a raw
//!   `INCRBY` (which cannot apply a TTL only on creation) and a raw
//!   `INCRBY` + `PEXPIRE … NX` pipeline in `MULTI` (the two-command equivalent);
//! - `set_if_absent`: the adapter vs a raw `SET key value NX PX ttl`, each on a
//!   fresh key so every call takes the writing path.
//!
//! Without `USERZ_REDIS_URL` the bench prints why and measures nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use redis::aio::ConnectionManager;
use userz_core::ports::Cache;
use userz_store_redis::{RedisCache, RedisCacheBuilder};

const TTL: Duration = Duration::from_secs(60);

fn setup() -> Option<(tokio::runtime::Runtime, RedisCache, ConnectionManager)> {
    let Ok(url) = std::env::var("USERZ_REDIS_URL") else {
        eprintln!("store_redis: USERZ_REDIS_URL is not set (source scripts/services.sh); skipping");
        return None;
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
    let (cache, raw) = rt.block_on(async {
        let prefix = format!("bench-{}", std::process::id());
        let cache = RedisCacheBuilder::new(url.clone())
            .with_prefix(prefix)
            .build()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let client = redis::Client::open(url).unwrap_or_else(|e| panic!("{e}"));
        let raw = ConnectionManager::new(client).await.unwrap_or_else(|e| panic!("connect: {e}"));
        (cache, raw)
    });
    Some((rt, cache, raw))
}

fn incr(c: &mut Criterion) {
    let Some((rt, cache, raw)) = setup() else { return };
    let mut g = c.benchmark_group("redis_incr");
    g.bench_function("raw_incrby", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut conn = raw.clone();
                let v: i64 = redis::cmd("INCRBY").arg("raw-ctr").arg(1).query_async(&mut conn).await.unwrap_or(0);
                v
            })
        })
    });
    g.bench_function("raw_multi_incrby_pexpire_nx", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut conn = raw.clone();
                let (v,): (i64,) = redis::pipe()
                    .atomic()
                    .cmd("INCRBY")
                    .arg("raw-ctr-ttl")
                    .arg(1)
                    .cmd("PEXPIRE")
                    .arg("raw-ctr-ttl")
                    .arg(60_000)
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await
                    .unwrap_or((0,));
                v
            })
        })
    });
    g.bench_function("adapter_incr", |b| {
        b.iter(|| rt.block_on(async { cache.incr("ctr", 1, Some(TTL)).await.unwrap_or(0) }))
    });
    g.finish();
}

fn set_if_absent(c: &mut Criterion) {
    let Some((rt, cache, raw)) = setup() else { return };
    let n = AtomicU64::new(0);
    let mut g = c.benchmark_group("redis_set_if_absent");
    g.bench_function("raw_set_nx_px", |b| {
        b.iter(|| {
            let key = format!("raw-sia-{}", n.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async {
                let mut conn = raw.clone();
                let r: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(b"v".as_slice())
                    .arg("NX")
                    .arg("PX")
                    .arg(60_000)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(None);
                r.is_some()
            })
        })
    });
    g.bench_function("adapter_set_if_absent", |b| {
        b.iter(|| {
            let key = format!("sia-{}", n.fetch_add(1, Ordering::Relaxed));
            rt.block_on(async { cache.set_if_absent(&key, Bytes::from_static(b"v"), Some(TTL)).await.unwrap_or(false) })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = incr, set_if_absent
}
criterion_main!(benches);
