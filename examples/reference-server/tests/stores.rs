//! The reference server starts on each store from configuration alone (a
//! `-c` file naming the store, nothing else changed): SQLite, PostgreSQL (with
//! Redis as its cache) and NATS JetStream, the real servers that
//! `scripts/services.sh` starts on loopback. On each, the printed `curl` line
//! gets `201` and the report reaches the dashboard, which exercises the event
//! log, the projections, the work queue and the cache of that store. Invalid or
//! unreachable store settings stop start-up with an error naming the setting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{dashboard_lists, server_command, spawn, submit_printed_curl_line, wait_line};

/// The master key every process of a shared-store deployment is given (none
/// is made for PostgreSQL or NATS: each process would make its own).
const MASTER_KEYS: (&str, &str) = (
    "USERZ_MASTER_KEYS",
    "master-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
);

/// A namespace no other test shares (PostgreSQL schema, NATS prefix).
fn namespace() -> String {
    format!("rs_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("userz.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Serves with `toml` as the configuration file, checks the printed store and
/// the main job's first steps on it. Returns the base URL, the public key and
/// the running server.
fn serves_the_main_job_on(kind: &str, toml: &str) -> (common::Running, String, String) {
    serves_the_main_job_with(kind, toml, &[])
}

fn serves_the_main_job_with(kind: &str, toml: &str, env: &[(&str, &str)]) -> (common::Running, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), toml);
    let mut cmd = server_command(&tmp.path().join("data"));
    cmd.arg("-c").arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (server, rx) = spawn(cmd);
    let mut seen = Vec::new();
    let url_line = wait_line(&rx, &mut seen, |l| l.starts_with("userz server listening on "));
    let base = url_line.trim_start_matches("userz server listening on ").trim().to_string();
    let store_line = wait_line(&rx, &mut seen, |l| l.trim_start().starts_with("store:"));
    // `store:      ready      sqlite, embedded (…)`: ready, and the configured engine.
    let (state, detail) = store_line.trim().trim_start_matches("store:").trim().split_once(' ').unwrap();
    assert_eq!(state, "ready", "{store_line}");
    assert!(detail.trim().starts_with(kind), "the banner names the {kind} store: {store_line}");
    let key_line = wait_line(&rx, &mut seen, |l| l.trim_start().starts_with("public key:"));
    let public_key = key_line.trim().trim_start_matches("public key:").trim().to_string();
    wait_line(&rx, &mut seen, |l| l.starts_with("submit feedback:"));
    let curl = wait_line(&rx, &mut seen, |l| l.trim_start().starts_with("curl "));
    let id = submit_printed_curl_line(&curl);
    assert!(dashboard_lists(&base, &rx, &mut seen, &id), "feedback {id} is in the dashboard queue on {kind}");
    (server, base, public_key)
}

/// `curl` with arguments; returns (status code, body bytes).
fn curl_bytes(args: &[&str]) -> (String, Vec<u8>) {
    let out = std::process::Command::new("curl").args(["-sS", "-w", "\n%{http_code}"]).args(args).output().unwrap();
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let split = out.stdout.iter().rposition(|&b| b == b'\n').unwrap();
    (String::from_utf8_lossy(&out.stdout[split + 1..]).into_owned(), out.stdout[..split].to_vec())
}

/// `curl` with arguments; returns (status code, body as text).
fn curl_status(args: &[&str]) -> (String, String) {
    let (code, body) = curl_bytes(args);
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn starts_on_sqlite_from_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("elsewhere.db");
    serves_the_main_job_on("sqlite", &format!("[store]\nkind = \"sqlite\"\npath = {:?}\n", db.to_str().unwrap()));
    assert!(db.is_file(), "the configured path holds the database");
}

/// The distributed layout from configuration: events on PostgreSQL, the cache
/// and the rate limits on Redis, blobs on S3 (moto). A screenshot uploaded
/// through the API lands in the bucket.
#[test]
fn starts_on_postgres_with_redis_and_s3_from_configuration() {
    let (Some(pg), Some(redis), Some(s3)) = (
        userz_testkit::services::require("USERZ_PG_URL"),
        userz_testkit::services::require("USERZ_REDIS_URL"),
        userz_testkit::services::require("USERZ_S3_ENDPOINT"),
    ) else {
        return;
    };
    let bucket = format!("userz-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (code, body) = curl_status(&["-X", "PUT", &format!("{}/{bucket}", s3.trim_end_matches('/'))]);
    assert_eq!(code, "200", "create bucket: {body}");
    let (_server, base, public_key) = serves_the_main_job_with(
        "postgres",
        &format!(
            "[store]\nkind = \"postgres\"\nurl = {pg:?}\nnamespace = {:?}\n\
             [cache]\nkind = \"redis\"\nurl = {redis:?}\n\
             [rate_limits]\nkind = \"redis\"\n\
             [blobs]\nkind = \"s3\"\nbucket = {bucket:?}\nendpoint = {s3:?}\n",
            namespace()
        ),
        &[("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), MASTER_KEYS],
    );
    let png = b"\x89PNG\r\n\x1a\nnot-really-a-png";
    let (code, body) = curl_status(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        &format!("Origin: {base}"),
        "-H",
        &format!("X-Userz-Public-Key: {public_key}"),
        "-d",
        &format!("{{\"kind\":\"screenshot\",\"contentType\":\"image/png\",\"byteSize\":{}}}", png.len()),
        &format!("{base}/v1/feedback/upload-url"),
    ]);
    assert_eq!(code, "201", "{body}");
    let ticket: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (url, key) = (ticket["uploadUrl"].as_str().unwrap(), ticket["key"].as_str().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.png");
    std::fs::write(&file, png).unwrap();
    let (code, body) = curl_status(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: image/png",
        "--data-binary",
        &format!("@{}", file.display()),
        url,
    ]);
    assert_eq!(code, "201", "{body}");
    // Read back with a SigV4-signed request (objects are private).
    let (code, stored) = curl_bytes(&[
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        "testing:testing",
        &format!("{}/{bucket}/{key}", s3.trim_end_matches('/')),
    ]);
    assert_eq!(code, "200", "the object is in the S3 bucket: {}", String::from_utf8_lossy(&stored));
    assert_eq!(stored, png, "byte for byte");
}

#[test]
fn starts_on_nats_from_configuration() {
    let Some(nats) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    serves_the_main_job_with(
        "nats",
        &format!("[store]\nkind = \"nats\"\nurl = {nats:?}\nnamespace = {:?}\n", namespace()),
        &[MASTER_KEYS],
    );
}

/// Runs the server with `toml` and returns its exit code and stderr; it must
/// stop by itself.
fn refused(toml: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), toml);
    let mut cmd = server_command(&tmp.path().join("data"));
    cmd.arg("-c").arg(&config).arg("serve");
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop on {toml:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn invalid_store_settings_stop_start_up_naming_the_setting() {
    for (toml, code, field) in [
        ("[store]\nkind = \"mysql\"\n", 2, "store.kind"),
        ("[store]\nkind = \"postgres\"\n", 2, "store.url"),
        ("[store]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:1/db\"\n", 2, "cache.kind"),
        ("[store]\nkind = \"nats\"\nurl = \"http://127.0.0.1:4222\"\n", 2, "store.url"),
        ("[cache]\nkind = \"redis\"\n", 2, "cache.url"),
        ("[store]\nnamespace = \"no spaces\"\n", 2, "store.namespace"),
        // Well-formed but unreachable (port 1 on loopback refuses at once).
        (
            "[store]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:1/db\"\n[cache]\nkind = \"memory\"\n",
            1,
            "store.url",
        ),
        ("[store]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:1\"\n", 1, "store.url"),
    ] {
        let (got, err) = refused(toml);
        assert_eq!(got, code, "{toml:?}: {err}");
        assert!(err.contains(field), "{toml:?} names {field}: {err}");
    }
}

/// `userz.toml` beside this crate documents the embedded defaults: it parses,
/// and every value it sets is the default, so it cannot drift from the code.
#[test]
fn the_shipped_config_file_states_the_embedded_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("userz.toml");
    let shipped = userz_server::Config::from_toml_file(&path).unwrap();
    shipped.validate().unwrap();
    assert_eq!(format!("{shipped:?}"), format!("{:?}", userz_server::Config::default()));
}

/// A shared store never gets a master key made: every process would make its
/// own and none could open the others' secrets. Without `USERZ_MASTER_KEYS`
/// the server stops naming it.
#[test]
fn a_shared_store_without_a_master_key_stops_start_up_naming_it() {
    let Some(nats) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let (code, err) = refused(&format!("[store]\nkind = \"nats\"\nurl = {nats:?}\nnamespace = {:?}\n", namespace()));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("USERZ_MASTER_KEYS") && err.contains("nats"), "{err}");
}
