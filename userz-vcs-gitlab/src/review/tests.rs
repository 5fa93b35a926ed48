//! The pure payload mapping (compact payloads; full deliveries are exercised
//! in `userz-engine/tests/review_webhooks.rs` and `userz-http/tests/hooks_inbound.rs`).
//! Moved from `userz-engine/src/review/tests.rs` with the same assertions.

use serde_json::json;

use super::*;
use userz_core::domain::pr::CommentSeverity;

fn gl(v: serde_json::Value) -> Result<Option<InboundPrNotice>> {
    GitLabReviewPayloads.parse("", v.to_string().as_bytes())
}

fn invalid_message(r: Result<Option<InboundPrNotice>>) -> String {
    match r {
        Err(Error::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
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
fn the_mapping_is_keyed_gitlab_and_needs_no_event_header() {
    assert_eq!(GitLabReviewPayloads.provider(), "gitlab");
    assert_eq!(GitLabReviewPayloads.event_header(), None);
    // The body decides, whatever the header said.
    let mr = json!({"object_kind": "merge_request", "project": {"path_with_namespace": "acme/widgets"},
                    "object_attributes": {"iid": 3, "action": "merge"}});
    let a = GitLabReviewPayloads.parse("Note Hook", mr.to_string().as_bytes()).unwrap();
    assert_eq!(a, gl(mr).unwrap());
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
