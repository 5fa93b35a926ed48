//! The engine's retention sweeper (`userz_engine::blobs::Sweeper`) over this
//! adapter, with an injected clock, on the in-memory object store,
//! the local filesystem, and the S3-compatible server that `scripts/services.sh`
//! starts (`USERZ_S3_ENDPOINT`).
//!
//! Age is measured from the `BlobStored` event (see the sweeper's docs), so the
//! same manual clock drives every backend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userz_core::domain::blob::{BlobDecider, BlobId, BlobState};
use userz_core::domain::common::Actor;
use userz_core::ids::{OrgId, RunId, UserId};
use userz_core::ports::blob::org_prefix;
use userz_core::ports::{BlobKey, BlobStore};
use userz_core::{Clock, SystemClock};
use userz_engine::blobs::{Blobs, SweepReport, Sweeper};
use userz_engine::CommandBus;
use userz_store_blob::{BlobStoreBuilder, Error, ObjectBlobStore};
use userz_store_memory::MemoryStores;
use userz_testkit::ManualClock;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

struct World {
    clock: Arc<ManualClock>,
    bus: CommandBus,
    blobs: Blobs,
    sweeper: Sweeper,
}

fn world(store: ObjectBlobStore, clock: Arc<ManualClock>) -> World {
    let store: Arc<dyn BlobStore> = Arc::new(store);
    let stores = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let blobs = Blobs::new(store.clone(), bus.clone(), clock.clone());
    let sweeper = Sweeper::new(store, bus.clone(), clock.clone());
    World { clock, bus, blobs, sweeper }
}

async fn exists(store: &ObjectBlobStore, key: &BlobKey) -> bool {
    store.head(key).await.unwrap_or_else(|e| panic!("head {key}: {e}")).is_some()
}

async fn raw_exists(store: &dyn ObjectStore, key: &Path) -> bool {
    match store.head(key).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("head {key}: {e}"),
    }
}

async fn state(bus: &CommandBus, key: &BlobKey) -> (BlobState, u64) {
    bus.load::<BlobDecider>(&CommandBus::stream::<BlobDecider>(BlobId::for_key(key.as_str())))
        .await
        .unwrap_or_else(|e| panic!("load: {e}"))
}

/// The must-show: 31 days old → deleted (with a `BlobDeleted` event); 31 days old
/// but retained → kept; 29 days old → kept. Then releasing the retained one lets
/// the next sweep delete it.
async fn thirty_day_retention(store: ObjectBlobStore) {
    let w = world(store.clone(), Arc::new(ManualClock::at_2026()));
    let org = OrgId::new();
    let old = BlobKey::screenshot(org, "old.png").unwrap_or_else(|e| panic!("{e}"));
    let kept = BlobKey::run_transcript(org, RunId::new());
    let young = BlobKey::screenshot(org, "young.png").unwrap_or_else(|e| panic!("{e}"));

    w.blobs.put(&old, Bytes::from_static(b"old")).await.unwrap_or_else(|e| panic!("{e}"));
    w.blobs.put(&kept, Bytes::from_static(b"{\"turn\":1}\n")).await.unwrap_or_else(|e| panic!("{e}"));
    let reviewer = Actor::User { user: UserId::new() };
    w.blobs.retain(&kept, reviewer.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(2 * DAY);
    w.blobs.put(&young, Bytes::from_static(b"young")).await.unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(29 * DAY); // old and kept: 31 days; young: 29 days

    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("sweep: {e}"));
    assert_eq!(report, SweepReport { scanned: 3, deleted: 1, retained: 1, young: 1, foreign: 0 });
    assert!(!exists(&store, &old).await, "31-day-old blob deleted");
    assert!(matches!(state(&w.bus, &old).await.0, BlobState::Deleted { .. }), "deletion is an event");
    assert!(exists(&store, &kept).await, "retained blob kept");
    assert!(exists(&store, &young).await, "29-day-old blob kept");
    assert_eq!(w.blobs.get(&young).await.unwrap_or_default(), Bytes::from_static(b"young"));

    w.blobs.release(&kept, reviewer).await.unwrap_or_else(|e| panic!("{e}"));
    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("sweep: {e}"));
    assert_eq!((report.deleted, report.young), (1, 1));
    assert!(!exists(&store, &kept).await, "released blob ages out");
}

#[tokio::test]
async fn retention_on_the_in_memory_store() {
    thirty_day_retention(BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"))).await;
}

#[tokio::test]
async fn retention_on_the_local_filesystem() {
    let dir = tempfile_dir();
    thirty_day_retention(BlobStoreBuilder::local(dir.join("blobs")).build().unwrap_or_else(|e| panic!("{e}"))).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_the_s3_compatible_server() {
    let Some(endpoint) = userz_testkit::services::require("USERZ_S3_ENDPOINT") else { return };
    let bucket = format!("userz-{}", uuid::Uuid::new_v4().simple());
    create_bucket(&endpoint, &bucket).await;
    let store = BlobStoreBuilder::s3(&bucket)
        .with_endpoint(&endpoint)
        .with_credentials("testing", "testing")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    thirty_day_retention(store).await;
}

#[tokio::test]
async fn an_interrupted_sweep_resumes_without_duplicate_events() {
    let store = BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"));
    let w = world(store.clone(), Arc::new(ManualClock::at_2026()));
    let org = OrgId::new();
    let key = BlobKey::screenshot(org, "a.png").unwrap_or_else(|e| panic!("{e}"));
    w.blobs.put(&key, Bytes::from_static(b"a")).await.unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(31 * DAY);
    // A sweep that crashed after recording the deletion, before deleting the object.
    let stream = CommandBus::stream::<BlobDecider>(BlobId::for_key(key.as_str()));
    let cmd = userz_core::domain::blob::BlobCommand::Delete { at: w.clock.now() };
    w.bus
        .execute::<BlobDecider>(&stream, userz_engine::CommandMeta::new(), &cmd)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, version_before) = state(&w.bus, &key).await;

    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.deleted, 1);
    assert!(!exists(&store, &key).await, "the object is deleted on resume");
    assert_eq!(state(&w.bus, &key).await.1, version_before, "no second BlobDeleted");
    assert_eq!(w.sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}")).scanned, 0);
}

#[tokio::test]
async fn a_recorded_blob_whose_object_never_landed_is_harmless() {
    let store = BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"));
    let w = world(store.clone(), Arc::new(ManualClock::at_2026()));
    let org = OrgId::new();
    let key = BlobKey::screenshot(org, "ghost.png").unwrap_or_else(|e| panic!("{e}"));
    w.blobs.put(&key, Bytes::from_static(b"g")).await.unwrap_or_else(|e| panic!("{e}"));
    store.delete(&key).await.unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(31 * DAY);
    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report, SweepReport::default(), "nothing listed, nothing done");
}

#[tokio::test]
async fn an_old_object_without_events_is_adopted_then_deleted() {
    let store = BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"));
    // The in-memory store stamps `last_modified` with the real time, so this
    // clock starts there and moves 31 days ahead.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let w = world(store.clone(), clock);
    let org = OrgId::new();
    let orphan = BlobKey::screenshot(org, "orphan.png").unwrap_or_else(|e| panic!("{e}"));
    let foreign = Path::from("elsewhere/file.bin");
    let raw = store.object_store();
    for k in [&Path::from(orphan.as_str()), &foreign] {
        raw.put(k, PutPayload::from_static(b"x")).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.young, report.foreign, report.deleted), (1, 1, 0), "fresh orphan kept");

    w.clock.advance(31 * DAY);
    let report = w.sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.deleted, report.foreign), (1, 1));
    assert!(!exists(&store, &orphan).await);
    assert!(raw_exists(raw.as_ref(), &foreign).await, "objects outside the layout are left alone");
    let (s, version) = state(&w.bus, &orphan).await;
    assert!(matches!(s, BlobState::Deleted { org: o, .. } if o == org));
    assert_eq!(version, 2, "BlobStored (adopted) then BlobDeleted");
}

#[tokio::test]
async fn a_shorter_max_age_is_honoured() {
    let store = BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"));
    let w = world(store.clone(), Arc::new(ManualClock::at_2026()));
    let sweeper = w.sweeper.clone().with_max_age(7 * DAY).with_prefix(org_prefix(OrgId::new()));
    let org = OrgId::new();
    let key = BlobKey::screenshot(org, "k.png").unwrap_or_else(|e| panic!("{e}"));
    w.blobs.put(&key, Bytes::from_static(b"k")).await.unwrap_or_else(|e| panic!("{e}"));
    w.clock.advance(8 * DAY);
    assert_eq!(sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}")).scanned, 0, "other org's prefix");
    let sweeper = sweeper.with_prefix(org_prefix(org));
    assert_eq!(sweeper.sweep().await.unwrap_or_else(|e| panic!("{e}")).deleted, 1);
}

#[tokio::test]
async fn a_key_under_another_org_is_refused() {
    // `Blobs::put` takes the org from the key, so a key can only be stored as its
    // own org's; a caller-supplied key of another org does not parse as ours.
    let store = BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"));
    let key = BlobKey::screenshot(OrgId::new(), "x.png").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(BlobKey::parse(OrgId::new(), key.as_str()), None, "another org's key refused");
    assert!(!exists(&store, &key).await, "nothing written");
}

#[test]
fn s3_bucket_names_under_three_characters_are_refused() {
    let err = BlobStoreBuilder::s3("ab").with_endpoint("http://127.0.0.1:1").build().err();
    assert!(matches!(err, Some(Error::Config(_))), "got {err:?}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("userz-blob-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Creates a bucket on the local S3-compatible server with a plain `PUT /bucket`
/// (moto accepts it unsigned), over a raw HTTP/1.1 connection.
async fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let req = format!("PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "create bucket: {resp}");
}
