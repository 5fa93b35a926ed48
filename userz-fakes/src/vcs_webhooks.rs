//! Realistic inbound VCS webhook deliveries for tests.
//!
//! The GitHub payloads start from `fixtures/webhooks/*.json`: instances of
//! the `x-webhooks` schemas `pull-request-closed` and
//! `pull-request-review-comment-created` of `contracts/github.openapi.subset.json`
//! (every required field present, with GitHub-shaped values; validated
//! against the schema by `userz-vcs-github/tests/contract.rs`). The builders
//! set the fields that matter for one delivery consistently (number, head
//! branch, state, merge flags, comment position and text). The GitLab payloads
//! follow GitLab's published "Merge request events" and "Comment events"
//! (`object_kind: note` on a diff) examples.

use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use userz_security::secret::SecretBytes;
use userz_security::webhooks::GitHubVerifier;

const GH_CLOSED: &str = include_str!("../fixtures/webhooks/github-pull-request-closed.json");
const GH_COMMENT: &str = include_str!("../fixtures/webhooks/github-pull-request-review-comment-created.json");

fn fixture(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|e| panic!("webhook fixture is not JSON: {e}"))
}

fn set_repository(v: &mut Value, location: &str) {
    let (owner, name) = location.split_once('/').unwrap_or(("", location));
    let api = format!("https://api.github.com/repos/{location}");
    let r = &mut v["repository"];
    r["full_name"] = json!(location);
    r["name"] = json!(name);
    r["owner"]["login"] = json!(owner);
    r["html_url"] = json!(format!("https://github.com/{location}"));
    r["url"] = json!(api);
}

fn set_pull(p: &mut Value, location: &str, number: u64, head: &str, base: &str) {
    p["number"] = json!(number);
    p["url"] = json!(format!("https://api.github.com/repos/{location}/pulls/{number}"));
    p["html_url"] = json!(format!("https://github.com/{location}/pull/{number}"));
    p["head"]["ref"] = json!(head);
    p["head"]["label"] = json!(format!("{}:{head}", location.split('/').next().unwrap_or("")));
    p["base"]["ref"] = json!(base);
    p["draft"] = json!(true);
    for side in ["head", "base"] {
        if p[side]["repo"].is_object() {
            p[side]["repo"]["full_name"] = json!(location);
        }
    }
}

/// A `pull_request` delivery with `action: closed` for PR `number` of
/// `location` (`owner/name`) whose head branch is `head`; `merged` sets
/// `pull_request.merged` (and `merged_at`).
pub fn github_pull_request_closed(location: &str, number: u64, head: &str, merged: bool) -> Value {
    let mut v = fixture(GH_CLOSED);
    v["action"] = json!("closed");
    v["number"] = json!(number);
    set_repository(&mut v, location);
    let p = &mut v["pull_request"];
    set_pull(p, location, number, head, "main");
    p["state"] = json!("closed");
    p["closed_at"] = json!("2026-11-25T04:10:00Z");
    p["merged"] = json!(merged);
    p["merged_at"] = if merged { json!("2026-11-25T04:10:00Z") } else { Value::Null };
    if !merged {
        p["merge_commit_sha"] = Value::Null;
    }
    v
}

/// A `pull_request_review_comment` delivery with `action: created`: comment
/// `comment_id` on line `line` of `path` in PR `number` of `location`.
pub fn github_review_comment_created(
    location: &str,
    number: u64,
    head: &str,
    comment_id: u64,
    path: &str,
    line: u32,
    body: &str,
) -> Value {
    let mut v = fixture(GH_COMMENT);
    v["action"] = json!("created");
    set_repository(&mut v, location);
    set_pull(&mut v["pull_request"], location, number, head, "main");
    v["pull_request"]["state"] = json!("open");
    let c = &mut v["comment"];
    c["id"] = json!(comment_id);
    c["path"] = json!(path);
    c["line"] = json!(line);
    c["original_line"] = json!(line);
    c["start_line"] = Value::Null;
    c["original_start_line"] = Value::Null;
    c["start_side"] = Value::Null;
    c["side"] = json!("RIGHT");
    c["body"] = json!(body);
    c["url"] = json!(format!("https://api.github.com/repos/{location}/pulls/comments/{comment_id}"));
    c["html_url"] = json!(format!("https://github.com/{location}/pull/{number}#discussion_r{comment_id}"));
    c["pull_request_url"] = json!(format!("https://api.github.com/repos/{location}/pulls/{number}"));
    v
}

/// The headers GitHub sends with a delivery of `event`, signed with `secret`.
pub fn github_headers(event: &str, delivery: &str, secret: &[u8], body: &[u8]) -> HeaderMap {
    let signature = GitHubVerifier::new(SecretBytes::copy_from(secret)).sign(body);
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        h.insert(name, HeaderValue::from_str(value).unwrap_or_else(|e| panic!("header {name}: {e}")));
    };
    put("user-agent", "GitHub-Hookshot/044aadd");
    put("content-type", "application/json");
    put("x-github-event", event);
    put("x-github-delivery", delivery);
    put("x-github-hook-id", "292430182");
    put("x-github-hook-installation-target-type", "integration");
    put("x-github-hook-installation-target-id", "424242");
    put("x-hub-signature-256", &signature);
    h
}

fn gitlab_project(id: u64, path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({
        "id": id,
        "name": name,
        "description": "",
        "web_url": format!("https://gitlab.example.com/{path}"),
        "avatar_url": null,
        "git_ssh_url": format!("git@gitlab.example.com:{path}.git"),
        "git_http_url": format!("https://gitlab.example.com/{path}.git"),
        "namespace": path.split('/').next().unwrap_or(""),
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "ci_config_path": null,
        "homepage": format!("https://gitlab.example.com/{path}"),
        "url": format!("git@gitlab.example.com:{path}.git"),
        "ssh_url": format!("git@gitlab.example.com:{path}.git"),
        "http_url": format!("https://gitlab.example.com/{path}.git"),
    })
}

fn gitlab_user() -> Value {
    json!({"id": 1, "name": "Reviewer", "username": "reviewer",
           "avatar_url": "https://www.gravatar.com/avatar/0?s=80&d=identicon", "email": "[REDACTED]"})
}

/// A "Merge Request Hook" delivery: MR `iid` of project `project_id`
/// (`path`) with `action` (`close`, `merge`, `update`, …).
pub fn gitlab_merge_request(project_id: u64, path: &str, iid: u64, source_branch: &str, action: &str) -> Value {
    let state = match action {
        "close" => "closed",
        "merge" => "merged",
        _ => "opened",
    };
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": gitlab_user(),
        "project": gitlab_project(project_id, path),
        "object_attributes": {
            "id": 99,
            "iid": iid,
            "target_branch": "main",
            "source_branch": source_branch,
            "source_project_id": project_id,
            "target_project_id": project_id,
            "title": "Draft: Userz: fix for feedback",
            "draft": true,
            "work_in_progress": true,
            "state": state,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable",
            "url": format!("https://gitlab.example.com/{path}/-/merge_requests/{iid}"),
            "created_at": "2026-11-25 03:00:00 UTC",
            "updated_at": "2026-11-25 04:10:00 UTC",
            "action": action,
        },
        "labels": [],
        "changes": {"state_id": {"previous": 1, "current": if action == "merge" { 3 } else { 2 }}},
        "repository": {"name": path.rsplit('/').next().unwrap_or(path),
                       "url": format!("git@gitlab.example.com:{path}.git"),
                       "homepage": format!("https://gitlab.example.com/{path}")},
    })
}

/// A "Note Hook" delivery: note `note_id` on line `line` of `file` in the
/// diff of MR `iid`.
#[allow(clippy::too_many_arguments)]
pub fn gitlab_diff_note(
    project_id: u64,
    path: &str,
    iid: u64,
    source_branch: &str,
    note_id: u64,
    file: &str,
    line: u32,
    note: &str,
) -> Value {
    json!({
        "object_kind": "note",
        "event_type": "note",
        "user": gitlab_user(),
        "project_id": project_id,
        "project": gitlab_project(project_id, path),
        "object_attributes": {
            "id": note_id,
            "note": note,
            "noteable_type": "MergeRequest",
            "type": "DiffNote",
            "author_id": 1,
            "created_at": "2026-11-25 04:00:00 UTC",
            "updated_at": "2026-11-25 04:00:00 UTC",
            "project_id": project_id,
            "attachment": null,
            "line_code": format!("0123456789abcdef_{line}_{line}"),
            "commit_id": "",
            "noteable_id": 99,
            "system": false,
            "st_diff": null,
            "url": format!("https://gitlab.example.com/{path}/-/merge_requests/{iid}#note_{note_id}"),
            "position": {
                "base_sha": "b5d6e7b1613fca24d250fa8e5bc7bcc3dd6002ef",
                "start_sha": "b5d6e7b1613fca24d250fa8e5bc7bcc3dd6002ef",
                "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                "old_path": file,
                "new_path": file,
                "position_type": "text",
                "old_line": null,
                "new_line": line,
                "line_range": null,
            },
        },
        "repository": {"name": path.rsplit('/').next().unwrap_or(path),
                       "url": format!("git@gitlab.example.com:{path}.git"),
                       "homepage": format!("https://gitlab.example.com/{path}")},
        "merge_request": {
            "id": 99,
            "iid": iid,
            "target_branch": "main",
            "source_branch": source_branch,
            "source_project_id": project_id,
            "target_project_id": project_id,
            "title": "Draft: Userz: fix for feedback",
            "state": "opened",
            "draft": true,
            "url": format!("https://gitlab.example.com/{path}/-/merge_requests/{iid}"),
        },
    })
}

/// The headers GitLab sends with `event` (`Merge Request Hook`, `Note Hook`)
/// and the secret `token`.
pub fn gitlab_headers(event: &str, uuid: &str, token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        h.insert(name, HeaderValue::from_str(value).unwrap_or_else(|e| panic!("header {name}: {e}")));
    };
    put("user-agent", "GitLab/17.5.0");
    put("content-type", "application/json");
    put("x-gitlab-event", event);
    put("x-gitlab-event-uuid", uuid);
    put("x-gitlab-webhook-uuid", "2e7f8a1c-4a43-4e39-9d2c-1b0c4a6f7e10");
    put("x-gitlab-instance", "https://gitlab.example.com");
    put("x-gitlab-token", token);
    h
}
