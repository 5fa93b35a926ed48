//! [`BlobStore`] conformance.
//!
//! Every check writes under a fresh organization, so one store (even a shared
//! bucket or directory) can run them all, in parallel with other tests.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use userz_core::ids::{OrgId, RunId};
use userz_core::ports::blob::org_prefix;
use userz_core::ports::{BlobKey, BlobStore};

fn key(org: OrgId, name: &str) -> BlobKey {
    BlobKey::screenshot(org, name).unwrap_or_else(|e| panic!("{e}"))
}

async fn keys_under(store: &dyn BlobStore, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut listing = store.list(prefix);
    while let Some(m) = listing.next().await {
        let m = m.unwrap_or_else(|e| panic!("list {prefix:?}: {e}"));
        assert!(out.insert(m.key.clone()), "list: {} listed twice", m.key);
    }
    out
}

/// Runs every check. `second` is another handle on the same backend (the same
/// directory, the same bucket); it is required when the store says it is
/// durable, and its checks are skipped (with a note) when it is not.
pub async fn run_all(store: Arc<dyn BlobStore>, second: Option<Arc<dyn BlobStore>>) {
    put_get_round_trip(store.as_ref()).await;
    missing_objects_read_as_none(store.as_ref()).await;
    capped_reads(store.as_ref()).await;
    head_reports_the_size(store.as_ref()).await;
    delete_is_idempotent(store.as_ref()).await;
    list_by_whole_segments(store.as_ref()).await;
    list_refuses_a_non_canonical_prefix(store.as_ref()).await;
    concurrent_puts_to_distinct_keys(store.clone()).await;
    if store.capabilities().durable {
        let second = second.unwrap_or_else(|| panic!("a durable store must be checked with a second handle"));
        a_second_handle_sees_the_objects(store.as_ref(), second.as_ref()).await;
    } else {
        eprintln!("blob conformance: not durable, so no second-handle check");
    }
}

/// Bytes round-trip exactly (including empty and non-UTF-8 objects); a
/// second put replaces the first.
pub async fn put_get_round_trip(store: &dyn BlobStore) {
    let org = OrgId::new();
    let k = key(org, "a.png");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store.put(&k, Bytes::from(binary.clone())).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(store.get(&k, None).await.unwrap_or_else(|e| panic!("get: {e}")).as_deref(), Some(&binary[..]));
    store.put(&k, Bytes::from_static(b"second")).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(
        store.get(&k, None).await.unwrap_or_else(|e| panic!("get: {e}")).as_deref(),
        Some(&b"second"[..]),
        "put replaces"
    );
    let empty = key(org, "empty.png");
    store.put(&empty, Bytes::new()).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(store.get(&empty, None).await.unwrap_or_else(|e| panic!("get: {e}")), Some(Bytes::new()), "empty");
    let nested = BlobKey::run_transcript(org, RunId::new());
    store.put(&nested, Bytes::from_static(b"{}\n")).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(store.get(&nested, None).await.unwrap_or_default().as_deref(), Some(&b"{}\n"[..]), "nested key");
}

/// A missing object is `Ok(None)` for `get` and `head`, never an error.
pub async fn missing_objects_read_as_none(store: &dyn BlobStore) {
    let k = key(OrgId::new(), "missing.png");
    assert_eq!(store.get(&k, None).await.unwrap_or_else(|e| panic!("get missing: {e}")), None);
    assert_eq!(store.get(&k, Some(10)).await.unwrap_or_else(|e| panic!("capped get missing: {e}")), None);
    assert_eq!(store.head(&k).await.unwrap_or_else(|e| panic!("head missing: {e}")), None);
}

/// `get(key, Some(n))` returns at most the first `n` bytes, all of a shorter
/// object, and an empty object as empty.
pub async fn capped_reads(store: &dyn BlobStore) {
    let org = OrgId::new();
    let k = key(org, "ten.bin");
    store.put(&k, Bytes::from_static(b"0123456789")).await.unwrap_or_else(|e| panic!("put: {e}"));
    let get = |n| store.get(&k, Some(n));
    assert_eq!(get(4).await.unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"0123"[..]), "cut at the limit");
    assert_eq!(get(10).await.unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"0123456789"[..]), "exact");
    assert_eq!(get(1 << 20).await.unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"0123456789"[..]), "shorter");
    assert_eq!(get(0).await.unwrap_or_else(|e| panic!("{e}")), Some(Bytes::new()), "zero bytes");
    let empty = key(org, "empty.bin");
    store.put(&empty, Bytes::new()).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(store.get(&empty, Some(5)).await.unwrap_or_else(|e| panic!("{e}")), Some(Bytes::new()), "empty object");
}

/// `head` names the key and the size.
pub async fn head_reports_the_size(store: &dyn BlobStore) {
    let k = key(OrgId::new(), "sized.bin");
    store.put(&k, Bytes::from(vec![7u8; 1234])).await.unwrap_or_else(|e| panic!("put: {e}"));
    let meta = store.head(&k).await.unwrap_or_else(|e| panic!("head: {e}")).unwrap_or_else(|| panic!("no head"));
    assert_eq!((meta.key.as_str(), meta.size), (k.as_str(), 1234));
    assert!(meta.last_modified.as_millis() > 0, "a write time is reported");
}

/// After `delete`, the object is gone; deleting again (or a missing key) is fine.
pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    let k = key(OrgId::new(), "gone.png");
    store.put(&k, Bytes::from_static(b"x")).await.unwrap_or_else(|e| panic!("put: {e}"));
    store.delete(&k).await.unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(store.get(&k, None).await.unwrap_or_else(|e| panic!("{e}")), None, "deleted");
    assert_eq!(store.head(&k).await.unwrap_or_else(|e| panic!("{e}")), None, "deleted");
    store.delete(&k).await.unwrap_or_else(|e| panic!("second delete: {e}"));
}

/// `list` finds exactly the objects under a prefix by whole segments: an org's
/// prefix lists its objects, nested ones included, and nothing of another org.
pub async fn list_by_whole_segments(store: &dyn BlobStore) {
    let (org, other) = (OrgId::new(), OrgId::new());
    let mine = [key(org, "a.png"), key(org, "b.png"), BlobKey::run_transcript(org, RunId::new())];
    for k in &mine {
        store.put(k, Bytes::from_static(b"m")).await.unwrap_or_else(|e| panic!("put: {e}"));
    }
    let theirs = key(other, "a.png");
    store.put(&theirs, Bytes::from_static(b"t")).await.unwrap_or_else(|e| panic!("put: {e}"));
    let want: BTreeSet<String> = mine.iter().map(ToString::to_string).collect();
    assert_eq!(keys_under(store, &org_prefix(org)).await, want, "the org's prefix lists its objects");
    assert_eq!(keys_under(store, &format!("{}/", org_prefix(org))).await, want, "a trailing '/' is ignored");
    let shots = keys_under(store, &format!("{}/screenshots", org_prefix(org))).await;
    assert_eq!(shots.len(), 2, "a deeper prefix lists less: {shots:?}");
    // `orgs/<org>` must not match `orgs/<org>x/...`: a prefix of the org's text
    // that is not a whole segment lists nothing of it.
    let partial = org_prefix(org);
    let partial = &partial[..partial.len() - 1];
    assert!(keys_under(store, partial).await.is_empty(), "prefixes match whole segments");
    let all = keys_under(store, "").await;
    assert!(want.iter().all(|k| all.contains(k)) && all.contains(theirs.as_str()), "the empty prefix lists all");
}

/// A prefix with `..` (or an empty segment) yields an `Invalid` error.
pub async fn list_refuses_a_non_canonical_prefix(store: &dyn BlobStore) {
    let org = OrgId::new();
    for bad in [format!("orgs/{org}/../x"), format!("orgs//{org}")] {
        let first = store.list(&bad).next().await;
        assert!(matches!(first, Some(Err(userz_core::Error::Invalid(_)))), "{bad:?} listed: {first:?}");
    }
}

/// Sixteen concurrent puts to distinct keys all land.
pub async fn concurrent_puts_to_distinct_keys(store: Arc<dyn BlobStore>) {
    let org = OrgId::new();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { store.put(&key(org, &format!("c{i}.bin")), Bytes::from(vec![i; 100])).await },
        ));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("put: {e}"));
    }
    assert_eq!(keys_under(store.as_ref(), &org_prefix(org)).await.len(), 16, "every put landed");
    for i in 0..16u8 {
        let got = store.get(&key(org, &format!("c{i}.bin")), None).await.unwrap_or_default();
        assert_eq!(got.as_deref(), Some(&vec![i; 100][..]), "object {i} intact");
    }
}

/// A durable store's objects are seen, and deleted, through another handle.
pub async fn a_second_handle_sees_the_objects(store: &dyn BlobStore, second: &dyn BlobStore) {
    let k = key(OrgId::new(), "shared.png");
    store.put(&k, Bytes::from_static(b"shared")).await.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(second.get(&k, None).await.unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"shared"[..]));
    second.delete(&k).await.unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(store.get(&k, None).await.unwrap_or_else(|e| panic!("{e}")), None, "deleted for both");
}
