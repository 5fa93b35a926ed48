//! `/openapi.json`: generated from the route table, lists every route, and
//! validates as OpenAPI 3.1 with a real validator (`openapi-spec-validator`,
//! installed by `scripts/services.sh`, path in `USERZ_OPENAPI_VALIDATOR`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use userz_http::{route_table, ErrorCode};
use userz_testkit::services::require;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_validates_as_3_1() {
    let h = common::start().await;
    let r = h.request("GET", "/openapi.json", &[], None).await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let table = route_table();
    assert!(table.len() >= 8);
    let mut ops = std::collections::HashSet::new();
    for spec in &table {
        let op = &doc["paths"][spec.path][spec.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing from the document", spec.method, spec.path);
        assert_eq!(op["operationId"], spec.operation_id);
        assert!(ops.insert(spec.operation_id), "duplicate operationId {}", spec.operation_id);
        for code in &spec.errors {
            let resp = &op["responses"][code.status().as_u16().to_string()];
            assert!(resp.is_object(), "{} {}: no response for {code}", spec.method, spec.path);
            assert!(resp["description"].as_str().unwrap().contains(code.as_str()));
        }
    }
    // Nothing documented that is not routed.
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, table.len());
    // Every route in the document is served (not a 404 from the router).
    for spec in &table {
        // Slack is the harness's configured webhook provider (an unconfigured
        // one answers 404 by design).
        let path = spec.path.replace("{id}", "x").replace("{ticket}", "x").replace("{provider}", "slack");
        let r = h.request(spec.method.as_str(), &path, &[], None).await;
        assert_ne!(r.status, 404, "{} {} is documented but not routed", spec.method, spec.path);
        assert_ne!(r.status, 405, "{} {} is documented but not routed", spec.method, spec.path);
    }
    // The error schema enumerates every stable code.
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, ErrorCode::ALL.len());

    let Some(validator) = require("USERZ_OPENAPI_VALIDATOR") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(&validator).arg("--schema").arg("3.1").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does catch a broken document (so the check above means something).
    let mut broken = doc.clone();
    broken["paths"]["/v1/apps"]["get"]["responses"] = serde_json::json!("nope");
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new(&validator).arg("--schema").arg("3.1").arg(&file).output().unwrap();
    assert!(!out.status.success(), "the validator accepted a broken document");
}
