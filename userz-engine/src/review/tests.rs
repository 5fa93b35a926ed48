//! The pure payload mapping (compact payloads; the full published shapes are
//! exercised in `tests/review_webhooks.rs` and validated against the contract
//! in `userz-vcs-github`).

use serde_json::json;

use super::*;
use userz_core::domain::pr::CommentSeverity;

fn gh(event: &str, v: serde_json::Value) -> Result<Option<InboundPrNotice>, Error> {
    parse_github(event, v.to_string().as_bytes())
}

fn gl(v: serde_json::Value) -> Result<Option<InboundPrNotice>, Error> {
    parse_gitlab(v.to_string().as_bytes())
}

fn invalid_message(r: Result<Option<InboundPrNotice>, Error>) -> String {
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
fn severity_markers_are_recognised_and_stripped() {
    assert_eq!(severity_from_body("[nit] rename this"), (CommentSeverity::Nit, "rename this"));
    assert_eq!(severity_from_body("  [MUST_CHANGE]  this leaks"), (CommentSeverity::MustChange, "this leaks"));
    assert_eq!(severity_from_body("[must-change] x"), (CommentSeverity::MustChange, "x"));
    assert_eq!(severity_from_body("[suggestion] maybe"), (CommentSeverity::Suggestion, "maybe"));
    assert_eq!(severity_from_body("plain text\n"), (CommentSeverity::Suggestion, "plain text"));
    // An unknown tag stays part of the text.
    assert_eq!(severity_from_body("[wip] later"), (CommentSeverity::Suggestion, "[wip] later"));
    assert_eq!(severity_from_body("see [nit] below"), (CommentSeverity::Suggestion, "see [nit] below"));
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

fn gitlab_note(position: serde_json::Value, note: &str) -> serde_json::Value {
    json!({
        "object_kind": "note",
        "event_type": "note",
        "project": {"id": 15, "path_with_namespace": "acme/widgets"},
        "object_attributes": {"id": 1244, "note": note, "noteable_type": "MergeRequest", "type": "DiffNote",
                              "position": position},
        "merge_request": {"iid": 3},
    })
}

#[test]
fn gitlab_merge_request_close_and_merge() {
    for (action, merged) in [("close", false), ("merge", true)] {
        let n =
            gl(json!({"object_kind": "merge_request", "project": {"id": 15, "path_with_namespace": "acme/widgets"},
                          "object_attributes": {"iid": 3, "action": action}}))
            .unwrap()
            .unwrap();
        assert_eq!((n.number, n.change), (3, InboundChange::Closed { merged }));
        assert_eq!(n.repository.id, Some(15));
    }
    let update = json!({"object_kind": "merge_request", "project": {"path_with_namespace": "acme/widgets"},
                        "object_attributes": {"iid": 3, "action": "update"}});
    assert_eq!(gl(update).unwrap(), None);
}

#[test]
fn gitlab_diff_note_becomes_a_diff_comment_and_general_notes_are_ignored() {
    let pos = json!({"new_path": "src/cart.rb", "new_line": 9, "old_path": "src/cart.rb", "old_line": null,
                     "position_type": "text"});
    let n = gl(gitlab_note(pos.clone(), "[nit] typo")).unwrap().unwrap();
    assert_eq!(n.number, 3);
    match n.change {
        InboundChange::DiffComment { provider_comment_id, path, line, severity, body } => {
            assert_eq!(
                (provider_comment_id, path.as_str(), line, severity),
                (1244, "src/cart.rb", 9, CommentSeverity::Nit)
            );
            assert_eq!(body.expose(), "typo");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(gl(gitlab_note(json!(null), "general remark")).unwrap(), None);
    let mut issue_note = gitlab_note(pos.clone(), "x");
    issue_note["object_attributes"]["noteable_type"] = json!("Issue");
    assert_eq!(gl(issue_note).unwrap(), None);
    assert_eq!(gl(json!({"object_kind": "push"})).unwrap(), None);

    let removed_line = json!({"new_path": "src/cart.rb", "new_line": null, "old_line": 4});
    let m = invalid_message(gl(gitlab_note(removed_line, "x")));
    assert!(m.contains("gitlab webhook: object_attributes.position.new_line: missing"), "{m}");
    let mut no_iid = gitlab_note(pos, "x");
    no_iid["merge_request"] = json!({});
    assert!(invalid_message(gl(no_iid)).contains("merge_request.iid: missing"));
    assert!(invalid_message(gl(json!({"object_kind": 5}))).contains("object_kind: must be a string"));
}
