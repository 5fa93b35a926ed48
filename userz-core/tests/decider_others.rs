//! Given/when/then specifications of the organization, App, Repo, PullRequest and
//! Timer deciders: each allowed transition and a rejection for each forbidden one.

use userz_core::domain::app::*;
use userz_core::domain::common::{Dedup, ProcessingMode, Role};
use userz_core::domain::org::*;
use userz_core::domain::pr::*;
use userz_core::domain::repo::*;
use userz_core::domain::timer::*;
use userz_core::ids::*;
use userz_core::{Sensitive, Timestamp};
use userz_testkit::spec::Spec;

fn email(s: &str) -> Sensitive<String> {
    Sensitive::new(s.to_string())
}

// --- Organization --------------------------------------------------------

struct OrgFixture {
    org: OrgId,
    owner: UserId,
    admin: UserId,
    member: UserId,
}

fn org_fixture() -> (OrgFixture, Vec<OrgEvent>) {
    let f = OrgFixture { org: OrgId::new(), owner: UserId::new(), admin: UserId::new(), member: UserId::new() };
    let events = vec![
        OrgEvent::OrgCreated { org: f.org, name: "Acme".into(), owner: f.owner, owner_email: email("o@a.test") },
        OrgEvent::MemberAdded { user: f.admin, email: email("a@a.test"), role: Role::Admin },
        OrgEvent::MemberAdded { user: f.member, email: email("m@a.test"), role: Role::Member },
    ];
    (f, events)
}

#[test]
fn org_create_and_duplicate_create() {
    let (org, owner) = (OrgId::new(), UserId::new());
    let create = OrgCommand::Create { org, name: " Acme ".into(), owner, owner_email: email("o@a.test") };
    Spec::<OrgDecider>::new().when(create.clone()).then(vec![OrgEvent::OrgCreated {
        org,
        name: "Acme".into(),
        owner,
        owner_email: email("o@a.test"),
    }]);
    let (_, given) = org_fixture();
    Spec::<OrgDecider>::new().given(given).when(create).then_rejects("already_exists");
    Spec::<OrgDecider>::new()
        .when(OrgCommand::Create { org, name: "".into(), owner, owner_email: email("x") })
        .then_rejects("invalid_input");
}

#[test]
fn org_commands_need_the_org() {
    Spec::<OrgDecider>::new()
        .when(OrgCommand::RemoveMember { actor: UserId::new(), user: UserId::new() })
        .then_rejects("not_found");
}

#[test]
fn admins_add_members_but_only_owners_grant_owner() {
    let (f, given) = org_fixture();
    let new = UserId::new();
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::AddMember { actor: f.admin, user: new, email: email("n@a.test"), role: Role::Member })
        .then(vec![OrgEvent::MemberAdded { user: new, email: email("n@a.test"), role: Role::Member }]);
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::AddMember { actor: f.admin, user: new, email: email("n"), role: Role::Owner })
        .then_rejects("not_permitted");
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::AddMember { actor: f.member, user: new, email: email("n"), role: Role::Member })
        .then_rejects("not_permitted");
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::AddMember { actor: UserId::new(), user: new, email: email("n"), role: Role::Member })
        .then_rejects("not_permitted");
    Spec::<OrgDecider>::new()
        .given(given)
        .when(OrgCommand::AddMember { actor: f.owner, user: f.member, email: email("m"), role: Role::Admin })
        .then_rejects("already_exists");
}

#[test]
fn role_changes_respect_ownership() {
    let (f, given) = org_fixture();
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::ChangeRole { actor: f.admin, user: f.member, role: Role::Admin })
        .then(vec![OrgEvent::MemberRoleChanged { user: f.member, role: Role::Admin }]);
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::ChangeRole { actor: f.owner, user: f.member, role: Role::Member })
        .then(vec![]);
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::ChangeRole { actor: f.admin, user: f.owner, role: Role::Member })
        .then_rejects("not_permitted");
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::ChangeRole { actor: f.owner, user: f.owner, role: Role::Admin })
        .then_rejects("last_owner");
    Spec::<OrgDecider>::new()
        .given(given)
        .when(OrgCommand::ChangeRole { actor: f.owner, user: UserId::new(), role: Role::Admin })
        .then_rejects("not_found");
}

#[test]
fn removing_members_keeps_an_owner() {
    let (f, given) = org_fixture();
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::RemoveMember { actor: f.admin, user: f.member })
        .then(vec![OrgEvent::MemberRemoved { user: f.member }]);
    Spec::<OrgDecider>::new()
        .given(given.clone())
        .when(OrgCommand::RemoveMember { actor: f.owner, user: f.owner })
        .then_rejects("last_owner");
    Spec::<OrgDecider>::new()
        .given(given)
        .when(OrgCommand::RemoveMember { actor: f.admin, user: f.owner })
        .then_rejects("not_permitted");
}

// --- App -----------------------------------------------------------------

fn app_created(app: AppId) -> AppEvent {
    AppEvent::AppCreated {
        app,
        org: OrgId::new(),
        name: "Web".into(),
        public_key: "pub_x".into(),
        settings: AppSettings::default(),
    }
}

#[test]
fn app_create_validates() {
    let (app, org) = (AppId::new(), OrgId::new());
    let mk = |pk: &str, origins: Vec<String>| AppCommand::Create {
        app,
        org,
        name: "Web".into(),
        public_key: pk.into(),
        settings: AppSettings { allowed_origins: origins, ..AppSettings::default() },
    };
    Spec::<AppDecider>::new()
        .when(mk("pub_1", vec!["https://acme.com".into()]))
        .then_matches(|e| matches!(e[0], AppEvent::AppCreated { .. }));
    Spec::<AppDecider>::new().when(mk("sk_1", vec![])).then_rejects("invalid_input");
    Spec::<AppDecider>::new().when(mk("pub_1", vec!["https://acme.com/path".into()])).then_rejects("invalid_input");
    Spec::<AppDecider>::new().when(mk("pub_1", vec!["acme.com".into()])).then_rejects("invalid_input");
    Spec::<AppDecider>::new().given(vec![app_created(app)]).when(mk("pub_1", vec![])).then_rejects("already_exists");
    Spec::<AppDecider>::new().when(AppCommand::Archive).then_rejects("not_found");
}

#[test]
fn app_configure_changes_mode_and_dedup() {
    let app = AppId::new();
    let patch = AppSettingsPatch {
        processing_mode: Some(ProcessingMode::Manual),
        batch_enabled: Some(true),
        ..Default::default()
    };
    Spec::<AppDecider>::new().given(vec![app_created(app)]).when(AppCommand::Configure { patch }).then(vec![
        AppEvent::AppConfigured {
            settings: AppSettings {
                processing_mode: ProcessingMode::Manual,
                dedup: Dedup::Batch { window_hours: 24 },
                ..AppSettings::default()
            },
        },
    ]);
    Spec::<AppDecider>::new()
        .given(vec![app_created(app)])
        .when(AppCommand::Configure { patch: AppSettingsPatch::default() })
        .then(vec![]);
}

#[test]
fn batch_and_incremental_are_mutually_exclusive() {
    let app = AppId::new();
    let both =
        AppSettingsPatch { batch_enabled: Some(true), incremental_merge_enabled: Some(true), ..Default::default() };
    Spec::<AppDecider>::new()
        .given(vec![app_created(app)])
        .when(AppCommand::Configure { patch: both })
        .then_rejects("dedup_modes_exclusive");
    let batched = vec![
        app_created(app),
        AppEvent::AppConfigured {
            settings: AppSettings { dedup: Dedup::Batch { window_hours: 24 }, ..AppSettings::default() },
        },
    ];
    let inc = AppSettingsPatch { incremental_merge_enabled: Some(true), ..Default::default() };
    Spec::<AppDecider>::new()
        .given(batched.clone())
        .when(AppCommand::Configure { patch: inc })
        .then_rejects("dedup_modes_exclusive");
    let switch =
        AppSettingsPatch { batch_enabled: Some(false), incremental_merge_enabled: Some(true), ..Default::default() };
    Spec::<AppDecider>::new().given(batched.clone()).when(AppCommand::Configure { patch: switch }).then(vec![
        AppEvent::AppConfigured { settings: AppSettings { dedup: Dedup::Incremental, ..AppSettings::default() } },
    ]);
    let bad_window = AppSettingsPatch { batch_window_hours: Some(0), ..Default::default() };
    Spec::<AppDecider>::new()
        .given(batched)
        .when(AppCommand::Configure { patch: bad_window })
        .then_rejects("invalid_input");
}

#[test]
fn app_link_repo_and_archive() {
    let (app, repo) = (AppId::new(), RepoId::new());
    Spec::<AppDecider>::new()
        .given(vec![app_created(app)])
        .when(AppCommand::LinkRepo { repo })
        .then(vec![AppEvent::RepoLinked { repo }]);
    Spec::<AppDecider>::new()
        .given(vec![app_created(app), AppEvent::RepoLinked { repo }])
        .when(AppCommand::LinkRepo { repo })
        .then(vec![]);
    Spec::<AppDecider>::new()
        .given(vec![app_created(app)])
        .when(AppCommand::Archive)
        .then(vec![AppEvent::AppArchived {}]);
    Spec::<AppDecider>::new()
        .given(vec![app_created(app), AppEvent::AppArchived {}])
        .when(AppCommand::LinkRepo { repo })
        .then_rejects("invalid_transition");
}

// --- Repo ----------------------------------------------------------------

fn repo_create(repo: RepoId, provider: Provider, prefix: Option<&str>) -> RepoCommand {
    RepoCommand::Create {
        repo,
        org: OrgId::new(),
        app: AppId::new(),
        provider,
        base_branch: None,
        branch_prefix: prefix.map(str::to_string),
        forbidden_paths: vec!["secrets/**".into()],
    }
}

#[test]
fn repo_create_defaults_prefix_and_validates_provider() {
    let repo = RepoId::new();
    let gh = Provider::Github { installation_id: 1, full_name: "acme/web".into() };
    Spec::<RepoDecider>::new()
        .when(repo_create(repo, gh.clone(), None))
        .then_matches(|e| matches!(&e[0], RepoEvent::RepoCreated { branch_prefix, .. } if branch_prefix == "userz/"));
    Spec::<RepoDecider>::new()
        .when(repo_create(repo, Provider::Github { installation_id: 1, full_name: "acme".into() }, None))
        .then_rejects("invalid_input");
    Spec::<RepoDecider>::new()
        .when(repo_create(repo, Provider::Gitlab { base_url: "ftp://x".into(), project: "1".into() }, None))
        .then_rejects("invalid_input");
    Spec::<RepoDecider>::new()
        .when(repo_create(
            repo,
            Provider::Gitlab { base_url: "http://127.0.0.1:9/gitlab".into(), project: "g/p".into() },
            Some("bot/"),
        ))
        .then_matches(|e| matches!(&e[0], RepoEvent::RepoCreated { branch_prefix, .. } if branch_prefix == "bot/"));
    Spec::<RepoDecider>::new().when(repo_create(repo, gh.clone(), Some("../x/"))).then_rejects("invalid_input");
    Spec::<RepoDecider>::new().when(repo_create(repo, gh, Some("nodash"))).then_rejects("invalid_input");
}

#[test]
fn repo_rules_and_prefix_updates() {
    let repo = RepoId::new();
    let created = match repo_create(repo, Provider::Git { remote: "file:///r.git".into() }, None) {
        RepoCommand::Create { repo, org, app, provider, base_branch, forbidden_paths, .. } => RepoEvent::RepoCreated {
            repo,
            org,
            app,
            provider,
            base_branch,
            branch_prefix: "userz/".into(),
            forbidden_paths,
        },
        _ => unreachable!(),
    };
    let rules = vec!["db/migrations/**".to_string()];
    Spec::<RepoDecider>::new()
        .given(vec![created.clone()])
        .when(RepoCommand::SetForbiddenPaths { rules: rules.clone() })
        .then(vec![RepoEvent::ForbiddenPathsSet { rules }]);
    Spec::<RepoDecider>::new()
        .given(vec![created.clone()])
        .when(RepoCommand::SetForbiddenPaths { rules: vec!["".into()] })
        .then_rejects("invalid_input");
    Spec::<RepoDecider>::new()
        .given(vec![created.clone()])
        .when(RepoCommand::SetBranchPrefix { prefix: "bot/".into() })
        .then(vec![RepoEvent::BranchPrefixSet { prefix: "bot/".into() }]);
    Spec::<RepoDecider>::new()
        .given(vec![created.clone()])
        .when(RepoCommand::SetBranchPrefix { prefix: "userz/".into() })
        .then(vec![]);
    Spec::<RepoDecider>::new()
        .given(vec![created])
        .when(repo_create(repo, Provider::Git { remote: "x".into() }, None))
        .then_rejects("already_exists");
    Spec::<RepoDecider>::new().when(RepoCommand::SetBranchPrefix { prefix: "a/".into() }).then_rejects("not_found");
}

// --- PullRequest ---------------------------------------------------------

fn pr_opened(pr: PrId, run: RunId) -> PrEvent {
    PrEvent::PullRequestOpened {
        pr,
        org: OrgId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        run,
        number: 12,
        url: "https://x/pull/12".into(),
        branch: "userz/fb-1".into(),
    }
}

fn comment(id: CommentId, severity: CommentSeverity) -> DiffComment {
    DiffComment {
        comment: id,
        path: "src/a.rs".into(),
        line: 3,
        body: Sensitive::new("use a match".into()),
        severity,
        resolved: false,
    }
}

#[test]
fn pr_open_once() {
    let (pr, run) = (PrId::new(), RunId::new());
    let open = PrCommand::Open {
        pr,
        org: OrgId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        run,
        number: 12,
        url: "u".into(),
        branch: "b".into(),
    };
    Spec::<PrDecider>::new().when(open.clone()).then_matches(|e| matches!(e[0], PrEvent::PullRequestOpened { .. }));
    Spec::<PrDecider>::new().given(vec![pr_opened(pr, run)]).when(open).then_rejects("already_exists");
    Spec::<PrDecider>::new().when(PrCommand::Close { merged: true }).then_rejects("not_found");
}

#[test]
fn review_loop_comments_resolve_and_revise() {
    let (pr, run, rev) = (PrId::new(), RunId::new(), RunId::new());
    let (c1, c2) = (CommentId::new(), CommentId::new());
    let base = vec![pr_opened(pr, run)];
    Spec::<PrDecider>::new()
        .given(base.clone())
        .when(PrCommand::AddComment { comment: comment(c1, CommentSeverity::MustChange) })
        .then(vec![PrEvent::CommentAdded { comment: comment(c1, CommentSeverity::MustChange) }]);
    let mut bad = comment(c1, CommentSeverity::Nit);
    bad.line = 0;
    Spec::<PrDecider>::new()
        .given(base.clone())
        .when(PrCommand::AddComment { comment: bad })
        .then_rejects("invalid_input");
    let with_comments = vec![
        pr_opened(pr, run),
        PrEvent::CommentAdded { comment: comment(c1, CommentSeverity::MustChange) },
        PrEvent::CommentAdded { comment: comment(c2, CommentSeverity::Nit) },
        PrEvent::CommentResolved { comment: c2 },
    ];
    Spec::<PrDecider>::new()
        .given(with_comments.clone())
        .when(PrCommand::AddComment { comment: comment(c1, CommentSeverity::Nit) })
        .then_rejects("already_exists");
    Spec::<PrDecider>::new().given(with_comments.clone()).when(PrCommand::ResolveComment { comment: c2 }).then(vec![]);
    Spec::<PrDecider>::new()
        .given(with_comments.clone())
        .when(PrCommand::ResolveComment { comment: CommentId::new() })
        .then_rejects("not_found");
    let state = Spec::<PrDecider>::new()
        .given(with_comments.clone())
        .when(PrCommand::RequestRevision { run: rev })
        .then(vec![PrEvent::RevisionRequested { run: rev, comments: vec![c1] }]);
    assert_eq!(state.get().map(|p| p.runs.clone()), Some(vec![run, rev]), "runs listed in order");
    let mut in_flight = with_comments.clone();
    in_flight.push(PrEvent::RevisionRequested { run: rev, comments: vec![c1] });
    Spec::<PrDecider>::new().given(in_flight.clone()).when(PrCommand::RequestRevision { run: rev }).then(vec![]);
    Spec::<PrDecider>::new()
        .given(in_flight.clone())
        .when(PrCommand::RequestRevision { run: RunId::new() })
        .then_rejects("revision_in_flight");
    Spec::<PrDecider>::new()
        .given(in_flight.clone())
        .when(PrCommand::CompleteRevision { run: RunId::new(), updated: true })
        .then_rejects("run_mismatch");
    Spec::<PrDecider>::new()
        .given(in_flight)
        .when(PrCommand::CompleteRevision { run: rev, updated: true })
        .then(vec![PrEvent::RevisionCompleted { run: rev, updated: true }]);
    let all_resolved = vec![
        pr_opened(pr, run),
        PrEvent::CommentAdded { comment: comment(c2, CommentSeverity::Nit) },
        PrEvent::CommentResolved { comment: c2 },
    ];
    Spec::<PrDecider>::new()
        .given(all_resolved)
        .when(PrCommand::RequestRevision { run: rev })
        .then_rejects("no_unresolved_comments");
}

#[test]
fn closed_prs_take_no_comments_or_revisions() {
    let (pr, run) = (PrId::new(), RunId::new());
    let closed = vec![pr_opened(pr, run), PrEvent::PullRequestClosed { merged: true }];
    Spec::<PrDecider>::new()
        .given(vec![pr_opened(pr, run)])
        .when(PrCommand::Close { merged: true })
        .then(vec![PrEvent::PullRequestClosed { merged: true }]);
    Spec::<PrDecider>::new().given(closed.clone()).when(PrCommand::Close { merged: false }).then(vec![]);
    Spec::<PrDecider>::new()
        .given(closed.clone())
        .when(PrCommand::AddComment { comment: comment(CommentId::new(), CommentSeverity::Nit) })
        .then_rejects("invalid_transition");
    Spec::<PrDecider>::new()
        .given(closed)
        .when(PrCommand::RequestRevision { run: RunId::new() })
        .then_rejects("invalid_transition");
}

// --- Timer ---------------------------------------------------------------

#[test]
fn timer_lifecycle() {
    let timer = TimerId::new();
    let target = TimerTarget::RunDeadline { run: RunId::new() };
    let at = Timestamp::from_millis(100);
    let scheduled = TimerEvent::TimerScheduled { timer, fire_at: at, target: target.clone() };
    Spec::<TimerDecider>::new()
        .when(TimerCommand::Schedule { timer, fire_at: at, target: target.clone() })
        .then(vec![scheduled.clone()]);
    Spec::<TimerDecider>::new()
        .given(vec![scheduled.clone()])
        .when(TimerCommand::Schedule { timer, fire_at: at, target: target.clone() })
        .then(vec![]);
    Spec::<TimerDecider>::new()
        .given(vec![scheduled.clone()])
        .when(TimerCommand::Schedule { timer, fire_at: Timestamp::from_millis(5), target: target.clone() })
        .then_rejects("already_exists");
    Spec::<TimerDecider>::new()
        .given(vec![scheduled.clone()])
        .when(TimerCommand::Fire { now: Timestamp::from_millis(99) })
        .then_rejects("not_due");
    Spec::<TimerDecider>::new()
        .given(vec![scheduled.clone()])
        .when(TimerCommand::Fire { now: Timestamp::from_millis(150) })
        .then(vec![TimerEvent::TimerFired { timer, target: target.clone(), at: Timestamp::from_millis(150) }]);
    let fired = vec![scheduled.clone(), TimerEvent::TimerFired { timer, target: target.clone(), at }];
    Spec::<TimerDecider>::new()
        .given(fired.clone())
        .when(TimerCommand::Fire { now: at })
        .then_rejects("invalid_transition");
    Spec::<TimerDecider>::new().given(fired).when(TimerCommand::Cancel).then_rejects("invalid_transition");
    Spec::<TimerDecider>::new()
        .given(vec![scheduled.clone()])
        .when(TimerCommand::Cancel)
        .then(vec![TimerEvent::TimerCancelled { timer }]);
    let cancelled = vec![scheduled, TimerEvent::TimerCancelled { timer }];
    Spec::<TimerDecider>::new().given(cancelled.clone()).when(TimerCommand::Cancel).then(vec![]);
    Spec::<TimerDecider>::new()
        .given(cancelled)
        .when(TimerCommand::Fire { now: at })
        .then_rejects("invalid_transition");
    Spec::<TimerDecider>::new().when(TimerCommand::Fire { now: at }).then_rejects("not_found");
}

// --- Organization API keys -------------------------------------------------

fn stored(prefix: &str) -> userz_core::credentials::StoredApiKey {
    userz_core::credentials::StoredApiKey {
        prefix: prefix.into(),
        salt: vec![1; 16],
        hash: vec![2; 32],
        params: userz_core::credentials::HashParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 },
    }
}

#[test]
fn org_api_keys_issue_and_revoke_by_admins_or_the_operator() {
    use userz_core::domain::common::Actor;
    let (f, given) = org_fixture();
    let at = Timestamp::from_millis(5);
    let issue = |actor| OrgCommand::IssueApiKey { actor, name: " ci ".into(), stored: stored("abcdefghijkl"), at };
    Spec::<OrgDecider>::new().given(given.clone()).when(issue(Some(f.admin))).then(vec![OrgEvent::ApiKeyIssued {
        name: "ci".into(),
        stored: stored("abcdefghijkl"),
        by: Actor::User { user: f.admin },
        at,
    }]);
    Spec::<OrgDecider>::new().given(given.clone()).when(issue(None)).then(vec![OrgEvent::ApiKeyIssued {
        name: "ci".into(),
        stored: stored("abcdefghijkl"),
        by: Actor::System,
        at,
    }]);
    Spec::<OrgDecider>::new().given(given.clone()).when(issue(Some(f.member))).then_rejects("not_permitted");
    let issued = OrgEvent::ApiKeyIssued { name: "ci".into(), stored: stored("abcdefghijkl"), by: Actor::System, at };
    let mut with_key = given.clone();
    with_key.push(issued);
    Spec::<OrgDecider>::new().given(with_key.clone()).when(issue(None)).then_rejects("already_exists");
    let bad = OrgCommand::IssueApiKey { actor: None, name: "x".into(), stored: stored("short"), at };
    Spec::<OrgDecider>::new().given(given.clone()).when(bad).then_rejects("invalid_input");
    let revoke = OrgCommand::RevokeApiKey { actor: Some(f.owner), prefix: "abcdefghijkl".into(), at };
    Spec::<OrgDecider>::new().given(with_key.clone()).when(revoke.clone()).then(vec![OrgEvent::ApiKeyRevoked {
        prefix: "abcdefghijkl".into(),
        by: Actor::User { user: f.owner },
        at,
    }]);
    let mut revoked = with_key.clone();
    revoked.push(OrgEvent::ApiKeyRevoked { prefix: "abcdefghijkl".into(), by: Actor::System, at });
    // Revoking twice is a no-op; unknown prefixes are refused.
    Spec::<OrgDecider>::new().given(revoked).when(revoke).then(vec![]);
    let unknown = OrgCommand::RevokeApiKey { actor: None, prefix: "zzzzzzzzzzzz".into(), at };
    Spec::<OrgDecider>::new().given(with_key).when(unknown).then_rejects("not_found");
    let _ = f.org;
}
