//! The admin CLI (`userz-server admin …`) as an operator uses it, through the
//! built binary: create an org, an App and a repo, list them, issue an `sk_`
//! key that a running server then accepts, revoke it while the server runs and
//! see the server refuse it, set a secret from standard input that is stored
//! only sealed, and clear errors (with exit codes) for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{server_command, start_server};
use userz_engine::secrets::open_secret;
use userz_engine::CommandBus;
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};

/// Runs `userz-server admin ARGS` on `data_dir` with `stdin` as input.
fn admin(data_dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = server_command(data_dir);
    cmd.arg("admin").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("userz-server runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `admin` that must succeed; returns stdout.
fn ok(data_dir: &std::path::Path, args: &[&str]) -> String {
    let out = admin(data_dir, args, b"");
    assert!(out.status.success(), "admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the `name:` line.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {name}: line in\n{out}"))
}

/// `GET base+path` with a bearer key: (status, body).
fn get(base: &str, path: &str, key: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {key}"), &format!("{base}{path}")])
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn operator_creates_tenants_and_keys_that_a_running_server_honours() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bare = tmp.path().join("site.git");
    git2::Repository::init_bare(&bare).unwrap();

    let out = ok(&data, &["org", "create", "--name", "Acme", "--owner-email", "ops@acme.test"]);
    assert!(out.starts_with("organization created"), "{out}");
    let org = field(&out, "id");
    let out = ok(
        &data,
        &["app", "create", "--org", &org, "--name", "Web", "--origin", "http://localhost:3000", "--mode", "manual"],
    );
    let app = field(&out, "id");
    let public_key = field(&out, "public key");
    assert!(public_key.starts_with("pub_"), "{out}");
    assert_eq!(field(&out, "mode"), "manual");
    let out = ok(&data, &["repo", "create", "--org", &org, "--app", &app, "--git", bare.to_str().unwrap()]);
    let repo = field(&out, "id");
    assert!(out.contains("branch only"), "{out}");

    // Listings read the directory, brought up to date by the command itself.
    let orgs = ok(&data, &["org", "list"]);
    assert!(orgs.contains(&org) && orgs.contains("Acme"), "{orgs}");
    let apps = ok(&data, &["app", "list", "--org", &org]);
    assert!(apps.starts_with("1 app(s)"), "{apps}");
    for want in [&app, &public_key, &repo, &"mode=manual".to_string()] {
        assert!(apps.contains(want.as_str()), "{want} in {apps}");
    }

    // A key shown once; the server started afterwards accepts it.
    let out = ok(&data, &["key", "issue", "--org", &org, "--name", "ci"]);
    let key = field(&out, "key");
    let prefix = field(&out, "prefix");
    assert!(key.starts_with(&format!("sk_{prefix}_")), "{out}");
    assert!(out.contains("shown once"), "{out}");
    let listed = ok(&data, &["key", "list", "--org", &org]);
    assert!(listed.contains(&prefix) && listed.contains("active") && !listed.contains(&key), "{listed}");

    let mut server = server_command(&data);
    server.env("USERZ_BOOTSTRAP_DEMO", "false");
    let (_running, _rx, base, _seen) = start_server(server);
    let (code, body) = get(&base, "/v1/apps", &key);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&app) && body.contains(&public_key), "{body}");

    // Revoked by the CLI while the server runs: the server refuses the key
    // once its store has seen the event (it polls the shared file).
    let out = ok(&data, &["key", "revoke", "--org", &org, "--prefix", &prefix]);
    assert!(out.starts_with("API key revoked"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let (code, body) = get(&base, "/v1/apps", &key);
        if code == 401 {
            break body;
        }
        assert!(Instant::now() < deadline, "the revoked key is still accepted: {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(refused.contains("\"code\""), "{refused}");
    assert!(ok(&data, &["key", "list", "--org", &org]).contains("revoked"));

    // A secret from standard input: never printed, stored only sealed, and
    // the server's own envelope opens it.
    let plaintext = format!("sk-test-{}", uuid::Uuid::new_v4().simple());
    let out = admin(
        &data,
        &["secret", "set", "--org", &org, "--kind", "ai_provider_key", "--slot", "model"],
        format!("{plaintext}\n").as_bytes(),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("write-only") && stdout.contains("ai_provider_key"), "{stdout}");
    assert!(!stdout.contains(&plaintext) && !String::from_utf8_lossy(&out.stderr).contains(&plaintext));
    drop(_running);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(plaintext.len()).any(|w| w == plaintext.as_bytes()),
                "plaintext found in {}",
                path.display()
            );
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opened = rt.block_on(async {
        let store = userz_store_sqlite::SqliteStoreBuilder::new(data.join("userz.db")).build().await.unwrap();
        let master = std::fs::read_to_string(data.join("master.key")).unwrap();
        let envelope = Envelope::new(Arc::new(StaticKeyProvider::from_env_value(master.trim()).unwrap()));
        let bus = CommandBus::new(Arc::new(store.clone()), Arc::new(store));
        open_secret(&bus, &envelope, org.parse().unwrap(), SecretKind::AiProviderKey, "model").await.unwrap()
    });
    assert_eq!(opened.expect("sealed secret present").expose_secret(), plaintext);

    // A generated signing secret is shown once and differs each time.
    let s1 = field(&ok(&data, &["app", "signing-secret", "--org", &org, "--app", &app]), "secret");
    let s2 = field(&ok(&data, &["app", "signing-secret", "--org", &org, "--app", &app]), "secret");
    assert!(s1.len() >= 43 && s1 != s2, "{s1} {s2}");
}

#[test]
fn bad_input_names_the_rule_and_sets_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let org = field(&ok(&data, &["org", "create", "--name", "Acme", "--owner-email", "ops@acme.test"]), "id");
    let fails = |args: &[&str], stdin: &[u8], code: i32, needle: &str| {
        let out = admin(&data, args, stdin);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "admin {args:?}: {err}");
        assert!(err.contains(needle), "admin {args:?}: {needle:?} not in {err}");
        assert!(out.stdout.is_empty(), "nothing reported as done: {}", String::from_utf8_lossy(&out.stdout));
    };
    let stranger = userz_core::ids::OrgId::new().to_string();
    fails(&["app", "create", "--org", &stranger, "--name", "x"], b"", 1, &format!("organization {stranger} not found"));
    fails(&["app", "create", "--org", &org, "--name", "x", "--origin", "localhost:3000"], b"", 2, "allowed_origins");
    fails(&["app", "create", "--org", "nope", "--name", "x"], b"", 2, "not a valid OrgId");
    fails(&["org", "create", "--name", "B", "--owner-email", "not-an-address"], b"", 2, "owner_email");
    fails(&["key", "revoke", "--org", &org, "--prefix", "sk_nope"], b"", 1, "not found");
    fails(&["secret", "set", "--org", &org, "--kind", "repo_token", "--slot", "r"], b"\n", 2, "was empty");
    // A value on the command line is not accepted at all.
    fails(&["secret", "set", "--org", &org, "--kind", "repo_token", "--slot", "r", "--value", "x"], b"", 2, "--value");
    let app = userz_core::ids::AppId::new().to_string();
    fails(&["repo", "create", "--org", &org, "--app", &app], b"", 2, "--git");
    fails(&["repo", "create", "--org", &org, "--app", &app, "--git", "/r.git"], b"", 1, "not found");
    // Nothing of the refused commands was recorded: still one org, no apps.
    assert!(ok(&data, &["org", "list"]).starts_with("1 organization(s)"));
    assert!(ok(&data, &["app", "list", "--org", &org]).starts_with("0 app(s)"));
    // An existing database whose master key is missing is not given a new
    // one (the server could not open what it would seal).
    std::fs::remove_file(data.join("master.key")).unwrap();
    fails(&["org", "list"], b"", 1, "no master.key");
    assert!(!data.join("master.key").exists());
}
