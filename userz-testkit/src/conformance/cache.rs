//! [`Cache`] conformance.

use std::sync::Arc;

use bytes::Bytes;
use userz_core::ports::Cache;

use super::unique;
use crate::clock::TimeControl;

/// Runs every check.
pub async fn run_all(cache: Arc<dyn Cache>, time: TimeControl) {
    set_get_delete(cache.as_ref()).await;
    ttl_expires(cache.as_ref(), &time).await;
    set_if_absent_is_exclusive(cache.clone()).await;
    set_if_absent_after_expiry(cache.as_ref(), &time).await;
    incr_is_atomic(cache.clone()).await;
    incr_ttl_applies_on_create(cache.as_ref(), &time).await;
}

/// Values round-trip; delete reports whether a key was live.
pub async fn set_get_delete(cache: &dyn Cache) {
    let k = unique("k");
    assert_eq!(cache.get(&k).await.unwrap_or_else(|e| panic!("{e}")), None);
    cache.set(&k, Bytes::from_static(b"v1"), None).await.unwrap_or_else(|e| panic!("{e}"));
    cache.set(&k, Bytes::from_static(b"v2"), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cache.get(&k).await.unwrap_or_default(), Some(Bytes::from_static(b"v2")), "set replaces");
    assert!(cache.delete(&k).await.unwrap_or(false));
    assert!(!cache.delete(&k).await.unwrap_or(true), "second delete finds nothing");
    assert_eq!(cache.get(&k).await.unwrap_or_default(), None);
}

/// A key with a TTL disappears after it; without one it stays.
pub async fn ttl_expires(cache: &dyn Cache, time: &TimeControl) {
    let k = unique("ttl");
    let keep = unique("keep");
    let unit = time.unit();
    cache.set(&k, Bytes::from_static(b"x"), Some(unit)).await.unwrap_or_else(|e| panic!("{e}"));
    cache.set(&keep, Bytes::from_static(b"y"), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(cache.get(&k).await.unwrap_or_default().is_some(), "live before the TTL");
    time.advance(unit + unit / 2).await;
    assert_eq!(cache.get(&k).await.unwrap_or_default(), None, "gone after the TTL");
    assert!(cache.get(&keep).await.unwrap_or_default().is_some(), "no TTL, no expiry");
}

/// Of 16 concurrent `set_if_absent` calls exactly one wins.
pub async fn set_if_absent_is_exclusive(cache: Arc<dyn Cache>) {
    let k = unique("sia");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let cache = cache.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move { cache.set_if_absent(&k, Bytes::from(vec![i]), None).await }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}")) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one set_if_absent wins");
}

/// An expired key counts as absent.
pub async fn set_if_absent_after_expiry(cache: &dyn Cache, time: &TimeControl) {
    let k = unique("sia-ttl");
    let unit = time.unit();
    assert!(cache.set_if_absent(&k, Bytes::from_static(b"a"), Some(unit)).await.unwrap_or(false));
    assert!(!cache.set_if_absent(&k, Bytes::from_static(b"b"), Some(unit)).await.unwrap_or(true), "live key blocks");
    time.advance(unit + unit / 2).await;
    assert!(
        cache.set_if_absent(&k, Bytes::from_static(b"c"), Some(unit)).await.unwrap_or(false),
        "expired key is absent"
    );
}

/// 8 tasks × 100 increments sum exactly.
pub async fn incr_is_atomic(cache: Arc<dyn Cache>) {
    let k = unique("ctr");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let cache = cache.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                cache.incr(&k, 1, None).await.unwrap_or_else(|e| panic!("{e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(cache.incr(&k, 0, None).await.unwrap_or(0), 800, "no lost increments");
    assert_eq!(cache.incr(&k, -5, None).await.unwrap_or(0), 795, "negative deltas");
}

/// `incr` applies the TTL only when it creates the key.
pub async fn incr_ttl_applies_on_create(cache: &dyn Cache, time: &TimeControl) {
    let k = unique("ctr-ttl");
    let unit = time.unit();
    assert_eq!(cache.incr(&k, 5, Some(unit)).await.unwrap_or(0), 5, "missing key starts at 0");
    time.advance(unit / 2).await;
    assert_eq!(cache.incr(&k, 1, Some(unit * 10)).await.unwrap_or(0), 6);
    time.advance(unit).await;
    assert_eq!(cache.incr(&k, 1, None).await.unwrap_or(0), 1, "the first TTL still applied; the counter restarted");
}
