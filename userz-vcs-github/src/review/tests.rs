//! The pure payload mapping (compact payloads; the full published shapes are
//! exercised in `tests/review_loop.rs` and validated against the contract in
//! `tests/contract.rs`). Moved from `userz-engine/src/review/tests.rs` with
//! the same assertions.

use serde_json::json;

use super::*;
use userz_core::domain::pr::{CommentSeverity, MAX_COMMENT_BYTES};

fn parse_github(event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>> {
    GitHubReviewPayloads.parse(event, body)
}

fn gh(event: &str, v: serde_json::Value) -> Result<Option<InboundPrNotice>> {
    parse_github(event, v.to_string().as_bytes())
}

fn invalid_message(r: Result<Option<InboundPrNotice>>) -> String {
    match r {
        Err(Error::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn review_comment(line: serde_json::Value, body: &str) -> serde_json::Value {
    json!({
        "action": "created",
        "comment": {"id": 2_506_181_733u64, "path": "src/save.ts", "line": line, "body": body},
        "pull_request": {"number": 12},
        "repository": {"id": 1_296_270, "full_name": "acme/widgets"},
    })
}

#[test]
fn the_mapping_is_keyed_github_and_reads_the_event_header() {
    assert_eq!(GitHubReviewPayloads.provider(), "github");
    assert_eq!(GitHubReviewPayloads.event_header(), Some("X-GitHub-Event"));
}

#[test]
fn github_closed_with_and_without_merge() {
    for merged in [true, false] {
        let n = gh(
            "pull_request",
            json!({"action": "closed", "number": 7, "pull_request": {"merged": merged},
                   "repository": {"id": 5, "full_name": "acme/widgets"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(n.number, 7);
        assert_eq!(n.repository, RepositoryRef { full_name: "acme/widgets".into(), id: Some(5) });
        assert_eq!(n.change, InboundChange::Closed { merged });
    }
}

#[test]
fn github_review_comment_becomes_a_diff_comment() {
    let n = gh("pull_request_review_comment", review_comment(json!(42), "[must_change] Handle the empty cart"))
        .unwrap()
        .unwrap();
    assert_eq!(n.number, 12);
    match n.change {
        InboundChange::DiffComment { provider_comment_id, path, line, body, severity } => {
            assert_eq!(provider_comment_id, 2_506_181_733);
            assert_eq!(path, "src/save.ts");
            assert_eq!(line, 42);
            assert_eq!(body.expose(), "Handle the empty cart");
            assert_eq!(severity, CommentSeverity::MustChange);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn github_events_and_actions_without_effect_are_ignored() {
    assert_eq!(gh("ping", json!({"zen": "Keep it logically awesome."})).unwrap(), None);
    assert_eq!(gh("push", json!({})).unwrap(), None);
    let opened = json!({"action": "opened", "number": 7, "repository": {"full_name": "acme/widgets"}});
    assert_eq!(gh("pull_request", opened).unwrap(), None);
    let mut edited = review_comment(json!(3), "x");
    edited["action"] = json!("edited");
    assert_eq!(gh("pull_request_review_comment", edited).unwrap(), None);
}

#[test]
fn malformed_github_payloads_name_the_field() {
    assert!(invalid_message(parse_github("pull_request", b"{not json")).contains("body: not JSON"));
    assert!(invalid_message(parse_github("pull_request", b"[1]")).contains("body: must be a JSON object"));
    let m = invalid_message(gh("pull_request", json!({"action": "closed", "repository": {"full_name": "a/b"}})));
    assert!(m.contains("github webhook: number: missing"), "{m}");
    let m = invalid_message(gh("pull_request", json!({"action": "closed", "number": 1})));
    assert!(m.contains("repository.full_name: missing"), "{m}");
    let m = invalid_message(gh(
        "pull_request",
        json!({"action": "closed", "number": 1, "pull_request": {"merged": "yes"}, "repository": {"full_name": "a/b"}}),
    ));
    assert!(m.contains("pull_request.merged: must be a boolean"), "{m}");
    let m = invalid_message(gh("pull_request_review_comment", review_comment(json!(null), "x")));
    assert!(m.contains("comment.line: missing"), "{m}");
    let m = invalid_message(gh("pull_request_review_comment", review_comment(json!(0), "x")));
    assert!(m.contains("comment.line: must be a line number"), "{m}");
    let m = invalid_message(gh("pull_request_review_comment", review_comment(json!(-3), "x")));
    assert!(m.contains("comment.line"), "{m}");
    let m = invalid_message(gh("pull_request_review_comment", review_comment(json!(3), "[nit]   ")));
    assert!(m.contains("comment.body: empty"), "{m}");
    let mut no_path = review_comment(json!(3), "x");
    no_path["comment"]["path"] = json!(17);
    assert!(invalid_message(gh("pull_request_review_comment", no_path)).contains("comment.path: must be a string"));
    let huge = "y".repeat(MAX_COMMENT_BYTES + 1);
    assert!(invalid_message(gh("pull_request_review_comment", review_comment(json!(3), &huge))).contains("too long"));
}
