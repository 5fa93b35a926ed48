//! The object_store adapter against the shared blob conformance suite: in
//! memory, on the local filesystem, and on the S3-compatible server that
//! `scripts/services.sh` starts (`USERZ_S3_ENDPOINT`; without it the test fails,
//! unless `USERZ_ALLOW_SKIP=1` says to skip).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userz_store_blob::BlobStoreBuilder;
use userz_testkit::conformance::blob;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    blob::run_all(Arc::new(BlobStoreBuilder::memory().build().unwrap_or_else(|e| panic!("{e}"))), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let open = || Arc::new(BlobStoreBuilder::local(dir.path().join("blobs")).build().unwrap_or_else(|e| panic!("{e}")));
    blob::run_all(open(), Some(open())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_server() {
    let Some(endpoint) = userz_testkit::services::require("USERZ_S3_ENDPOINT") else { return };
    let bucket = format!("userz-{}", uuid::Uuid::new_v4().simple());
    create_bucket(&endpoint, &bucket).await;
    let open = || {
        Arc::new(
            BlobStoreBuilder::s3(&bucket)
                .with_endpoint(&endpoint)
                .with_credentials("testing", "testing")
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    blob::run_all(open(), Some(open())).await;
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
