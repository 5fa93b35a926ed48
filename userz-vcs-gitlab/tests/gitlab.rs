//! What the GitLab provider does beyond the shared VCS conformance suite
//! (`tests/conformance.rs`): lookups by source branch, closed merge requests,
//! self-hosted instances under a path prefix, GitLab's own error texts,
//! configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{agent_commit, env, env_at, run, target, PROJECT};
use userz_core::ids::FeedbackId;
use userz_core::ports::{PrRequest, VcsProvider, Workspace};
use userz_core::Error;
use userz_security::secret::SecretString;
use userz_vcs_gitlab::GitLabProvider;

fn mr_request(ws: &Workspace, title: &str, base: Option<&str>) -> PrRequest {
    PrRequest {
        target: target(base),
        branch: ws.branch.clone(),
        title: title.into(),
        body: format!("> Machine-written, unreviewed.\n\nRun {}", ws.run),
        run: ws.run,
        feedback: FeedbackId::new(),
    }
}

async fn prepared(e: &common::Env, branch: &str) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = e.provider.prepare_workspace(&target(Some("main")), run(), branch, false, dir.path()).await.unwrap();
    (dir, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_mr_created_finds_the_same_mr_by_source_branch_and_skips_closed_ones() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-4").await;
    agent_commit(&ws, "b.txt", "change\n", "Agent change");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    let request = mr_request(&ws, "Fix the save button", Some("main"));

    let first = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(first.created);
    // The step dies here, before the event is stored; the retry runs again
    // in a fresh process (a new provider: nothing remembered in memory).
    let restarted = GitLabProvider::builder(e.fake.base_url(), SecretString::from(e.token.clone())).build().unwrap();
    let retry = restarted.open_or_update_pr(&request).await.unwrap();
    assert!(!retry.created, "found through the source-branch lookup");
    assert_eq!((retry.number, &retry.url), (first.number, &first.url));
    let mrs = e.fake.merge_requests(PROJECT);
    assert_eq!(mrs.len(), 1, "no second merge request: {mrs:?}");
    let mr = &mrs[0];
    assert!(mr.draft && mr.title == "Draft: Fix the save button", "draft by title prefix: {mr:?}");
    assert_eq!((mr.source_branch.as_str(), mr.target_branch.as_str()), (ws.branch.as_str(), "main"));
    let lookups = e.fake.exchanges().into_iter().filter(|x| x.method == "GET").count();
    assert_eq!(lookups, 2);
    let creates = e.fake.exchanges().into_iter().filter(|x| x.method == "POST").count();
    assert_eq!(creates, 1, "the retry did not even try to create");

    // A closed merge request is not reused: the next run opens a new one.
    e.fake.close_merge_request(PROJECT, first.number);
    let reopened = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(reopened.created && reopened.number != first.number);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_hosted_base_url_with_a_path_prefix_works_end_to_end() {
    let e = env_at("/gitlab").await;
    let base = e.fake.base_url();
    assert!(base.ends_with("/gitlab"), "{base}");
    // Clone, push and open the merge request, all through `{baseUrl}`.
    let dir = tempfile::tempdir().unwrap();
    let ws = e.provider.prepare_workspace(&target(None), run(), "userz/self-hosted", false, dir.path()).await.unwrap();
    let head = agent_commit(&ws, "s.txt", "self-hosted\n", "Agent change on a self-hosted instance");
    e.provider.push(&target(None), &ws).await.unwrap();
    assert_eq!(e.git.branch_head(PROJECT, &ws.branch).unwrap().as_deref(), Some(head.as_str()));
    let mr = e.provider.open_or_update_pr(&mr_request(&ws, "Self-hosted fix", None)).await.unwrap();
    assert!(mr.created);
    assert_eq!(mr.url, format!("{base}/{PROJECT}/-/merge_requests/{}", mr.number));

    let git = e.fake.git_requests();
    assert!(git.len() >= 4, "clone, default branch and push went through the instance: {git:?}");
    assert!(git.iter().all(|r| r.path.starts_with(&format!("/gitlab/{PROJECT}.git/"))), "{git:?}");
    let api = e.fake.exchanges();
    assert!(!api.is_empty());
    for x in &api {
        assert!(x.path.starts_with("/gitlab/api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests"), "{}", x.path);
        assert!(x.status < 300, "{} {} → {}", x.method, x.path, x.status);
    }
    assert_eq!(e.fake.merge_requests(PROJECT)[0].target_branch, "main", "default branch read over git");

    // The same instance, the project named by its numeric id: same merge request.
    let by_id = GitLabProvider::builder(format!("{base}/"), SecretString::from(e.token.clone()))
        .with_project_id(e.project_id)
        .build()
        .unwrap();
    let again = by_id.open_or_update_pr(&mr_request(&ws, "Self-hosted fix", None)).await.unwrap();
    assert_eq!((again.number, again.created), (mr.number, false));
    let last = e.fake.exchanges().pop().unwrap();
    assert!(
        last.path.starts_with(&format!("/gitlab/api/v4/projects/{}/merge_requests", e.project_id)),
        "{}",
        last.path
    );

    // Without the prefix nothing is found: the prefix is really used.
    let wrong =
        GitLabProvider::builder(base.trim_end_matches("/gitlab"), SecretString::from(e.token.clone())).build().unwrap();
    let err = wrong.open_or_update_pr(&mr_request(&ws, "x", Some("main"))).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_mid_run_is_a_clear_retryable_error_with_gitlabs_message() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-7").await;
    agent_commit(&ws, "e.txt", "change\n", "Agent change");

    e.fake.revoke_all_tokens();
    // The push is refused by the instance...
    let err = e.provider.push(&target(Some("main")), &ws).await.unwrap_err();
    let Error::Effect { port, message, retryable } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(*port, "vcs");
    assert!(message.contains("push") && message.contains("token was refused"), "{message}");
    assert!(*retryable);
    assert!(!message.contains(&e.token));
    assert_eq!(e.git.branch_head(PROJECT, &ws.branch).unwrap(), None);
    // ...and so is the API call, naming GitLab's own message.
    let err = e.provider.open_or_update_pr(&mr_request(&ws, "Fix", Some("main"))).await.unwrap_err();
    let Error::Effect { port, message, retryable } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(*port, "vcs");
    assert!(message.contains("401 Unauthorized") && message.contains("merge_requests/list"), "{message}");
    assert!(message.contains("rotate the Repo's token"), "{message}");
    assert!(*retryable);
    assert!(!message.contains(&e.token));
    assert!(e.fake.merge_requests(PROJECT).is_empty());

    // After the owner rotates the token, a provider with the new one succeeds.
    let fresh = format!("glpat-{}", uuid::Uuid::new_v4().simple());
    e.fake.add_token(&fresh);
    let rotated = GitLabProvider::builder(e.fake.base_url(), SecretString::from(fresh)).build().unwrap();
    // (The test git server accepts the original token only; the API shows it.)
    let err = rotated.open_or_update_pr(&mr_request(&ws, "Fix", Some("main"))).await;
    assert!(err.is_ok(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_run_commits_on_the_same_branch_and_updates_the_same_mr() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-6").await;
    let first_head = agent_commit(&ws, "d.txt", "first\n", "First attempt");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    let opened = e.provider.open_or_update_pr(&mr_request(&ws, "Fix v1", Some("main"))).await.unwrap();
    assert!(opened.created);
    let sha = |e: &common::Env| {
        let list = e.fake.exchanges().into_iter().rev().find(|x| x.method == "GET").unwrap();
        list.response_body[0]["sha"].as_str().unwrap().to_string()
    };

    // The revision run continues the remote branch.
    let dir = tempfile::tempdir().unwrap();
    let ws2 = e.provider.prepare_workspace(&target(Some("main")), run(), &ws.branch, true, dir.path()).await.unwrap();
    assert_eq!(ws2.base_commit, first_head);
    let head = agent_commit(&ws2, "d.txt", "second\n", "Address review");
    e.provider.push(&target(Some("main")), &ws2).await.unwrap();
    assert_eq!(e.git.branch_log(PROJECT, &ws.branch).unwrap()[..2], ["Address review", "First attempt"]);

    let updated = e.provider.open_or_update_pr(&mr_request(&ws2, "Fix v2", Some("main"))).await.unwrap();
    assert_eq!((updated.number, updated.created, &updated.url), (opened.number, false, &opened.url));
    assert_eq!(sha(&e), head, "the same merge request now shows the revision's head");
    let mrs = e.fake.merge_requests(PROJECT);
    assert_eq!(mrs.len(), 1);
    // Title and description stay those of the opening run: rewriting them
    // needs `PUT …/merge_requests/:iid`, outside the published description.
    assert_eq!(mrs[0].title, "Draft: Fix v1");
    assert!(mrs[0].description.contains(&ws.run.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_name_gitlabs_status_and_message_and_classify_retries() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-8").await;
    let req = mr_request(&ws, "Fix", Some("main"));

    e.fake.fail_next(502, "502 Bad Gateway");
    let err = e.provider.open_or_update_pr(&req).await.unwrap_err();
    assert!(err.is_retryable(), "5xx is retryable: {err}");
    assert!(err.to_string().contains("502") && err.to_string().contains("502 Bad Gateway"), "{err}");

    // Source and target the same branch: GitLab's 409, not a duplicate, not retryable.
    let same = PrRequest { branch: "main".into(), ..req.clone() };
    let err = e.provider.open_or_update_pr(&same).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("409") && err.to_string().contains("same project/branch"), "{err}");

    // An unknown project: 404 with GitLab's message, not retryable.
    let missing = PrRequest {
        target: userz_core::ports::RepoTarget { location: "acme/missing".into(), ..req.target.clone() },
        ..req.clone()
    };
    let err = e.provider.open_or_update_pr(&missing).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("404 Project Not Found"), "{err}");

    // A location that is no project path never reaches the network.
    let bad =
        PrRequest { target: userz_core::ports::RepoTarget { location: "widgets".into(), ..req.target.clone() }, ..req };
    assert!(matches!(e.provider.open_or_update_pr(&bad).await.unwrap_err(), Error::Invalid(_)));
}

#[test]
fn config_is_checked_at_build() {
    let token = || SecretString::from("glpat-x".to_string());
    let err = GitLabProvider::builder("https://oauth2:t@gitlab.example", token()).build().unwrap_err();
    assert_eq!(err.code(), "gitlab_config");
    assert!(err.to_string().contains("user info"), "{err}");
    let err = GitLabProvider::builder("ftp://gitlab.example", token()).build().unwrap_err();
    assert!(err.to_string().contains("base_url"), "{err}");
    let err = GitLabProvider::builder("https://gitlab.example", SecretString::from("")).build().unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    let err = GitLabProvider::builder("https://gitlab.example", SecretString::from("a\nb")).build().unwrap_err();
    assert!(err.to_string().contains("token") && !err.to_string().contains("a\nb"), "{err}");
    let err = GitLabProvider::builder("https://gitlab.example", token()).with_git_user("a:b").build().unwrap_err();
    assert!(err.to_string().contains("git_user"), "{err}");
    let p = GitLabProvider::builder("https://git.example.org/gitlab/", token()).build().unwrap();
    assert_eq!(p.remote_url("g/s/p").unwrap(), "https://git.example.org/gitlab/g/s/p.git");
    assert!(p.capabilities().pull_requests);
    assert!(!format!("{p:?}").contains("glpat-x"));
    // This build's libgit2 speaks HTTPS (git2 `https` feature, system OpenSSL).
    assert!(git2::Version::get().https());
}
