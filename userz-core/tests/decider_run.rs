//! Given/when/then specification of the run lifecycle.

use std::time::Duration;

use userz_core::decider::Decider;
use userz_core::domain::common::Actor;
use userz_core::domain::run::*;
use userz_core::guardrail::Violation;
use userz_core::ids::{AppId, CommentId, FeedbackId, OrgId, PrId, RepoId, RunId};
use userz_core::ports::sandbox::{EgressRecord, SandboxExit, Usage};
use userz_core::Timestamp;
use userz_testkit::spec::Spec;

type S = Spec<RunDecider>;

const T0: Timestamp = Timestamp::from_millis(5_000_000);
const WALL: Duration = Duration::from_secs(20 * 60);

fn queued(run: RunId) -> RunEvent {
    RunEvent::RunQueued {
        run,
        org: OrgId::new(),
        app: AppId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        branch: "userz/fb-1".into(),
        kind: RunKind::Initial,
        wall_clock_ms: 1_200_000,
        at: T0,
    }
}

fn usage() -> Usage {
    Usage { provider: "openai".into(), model: "m".into(), tokens_in: 10, tokens_out: 20, cost_micros: 30 }
}

fn reach(run: RunId, status: RunStatus) -> Vec<RunEvent> {
    use RunEvent as E;
    let mut v = vec![queued(run)];
    let steps: Vec<RunEvent> = vec![
        E::ProvisioningStarted { at: T0, deadline_at: T0 + WALL, attempt: 1 },
        E::AgentStarted { base_commit: "abc".into(), sandbox: None, at: T0 },
        E::AgentFinished { exit: SandboxExit::Completed, usage: usage(), transcript: None, at: T0 },
        E::GuardrailPassed { changed_paths: 1 },
    ];
    let upto = match status {
        RunStatus::Queued => 0,
        RunStatus::Provisioning => 1,
        RunStatus::Running => 2,
        RunStatus::Checking => 3,
        _ => 4,
    };
    v.extend(steps.into_iter().take(upto));
    match status {
        RunStatus::PrOpened => {
            v.push(E::BranchPushed { branch: "userz/fb-1".into(), head: "h1".into() });
            v.push(E::PrOpened { number: 7, url: "u".into(), created: true, at: T0 });
        }
        RunStatus::BranchPushed => {
            v.push(E::BranchPushed { branch: "userz/fb-1".into(), head: "h1".into() });
            v.push(E::BranchOnlyCompleted { at: T0 });
        }
        RunStatus::PrFailed => {
            v.pop();
            v.push(E::GuardrailRefused { file: ".env".into(), rule: ".env".into(), violations: vec![] });
        }
        RunStatus::Failed => v.push(E::RunFailed { reason: "x".into(), at: T0 }),
        RunStatus::TimedOut => v.push(E::RunTimedOut { at: T0 + WALL }),
        RunStatus::Cancelled => v.push(E::RunCancelled { by: Actor::System, at: T0 }),
        _ => {}
    }
    v
}

const ALL: [RunStatus; 11] = [
    RunStatus::Queued,
    RunStatus::Provisioning,
    RunStatus::Running,
    RunStatus::Checking,
    RunStatus::Pushing,
    RunStatus::PrOpened,
    RunStatus::BranchPushed,
    RunStatus::PrFailed,
    RunStatus::Failed,
    RunStatus::TimedOut,
    RunStatus::Cancelled,
];

fn commands(run: RunId) -> Vec<(&'static str, RunCommand)> {
    vec![
        (
            "request",
            RunCommand::Request {
                run,
                org: OrgId::new(),
                app: AppId::new(),
                repo: RepoId::new(),
                feedback: FeedbackId::new(),
                branch: "userz/x".into(),
                kind: RunKind::Initial,
                wall_clock: WALL,
                at: T0,
            },
        ),
        ("provision", RunCommand::Provision { at: T0 }),
        ("start_agent", RunCommand::StartAgent { base_commit: "abc".into(), sandbox: None, at: T0 }),
        (
            "finish_agent",
            RunCommand::FinishAgent {
                exit: SandboxExit::Completed,
                usage: usage(),
                transcript: None,
                egress: vec![],
                at: T0,
            },
        ),
        ("record_guardrail", RunCommand::RecordGuardrail { changed_paths: 1, violations: vec![] }),
        ("record_push", RunCommand::RecordPush { branch: "userz/fb-1".into(), head: "h2".into() }),
        ("record_pr", RunCommand::RecordPr { number: 1, url: "u".into(), created: true, at: T0 }),
        ("complete_branch_only", RunCommand::CompleteBranchOnly { at: T0 }),
        (
            "schedule_retry",
            RunCommand::ScheduleRetry {
                step: "push".into(),
                attempt: 1,
                error: "e".into(),
                delay_ms: 1000,
                retry_at: T0,
            },
        ),
        ("fail", RunCommand::Fail { reason: "x".into(), at: T0 }),
        ("time_out", RunCommand::TimeOut { at: T0 + WALL }),
        ("cancel", RunCommand::Cancel { by: Actor::System, at: T0 }),
    ]
}

/// The expected outcome of `command` in `status`: `Ok(())` accepted, `Err(rule)` refused.
fn expected(status: RunStatus, command: &str) -> Result<(), &'static str> {
    use RunStatus as R;
    if command == "request" {
        return Err("already_exists");
    }
    if status.is_terminal() {
        return Err("invalid_transition");
    }
    let ok = match command {
        "provision" => matches!(status, R::Queued | R::Provisioning | R::Running | R::Checking | R::Pushing),
        "start_agent" => status == R::Provisioning,
        "finish_agent" => status == R::Running,
        "record_guardrail" => status == R::Checking,
        "record_push" => status == R::Pushing,
        // In `Pushing` without a push yet, PR and branch-only completion need the push first.
        "record_pr" | "complete_branch_only" => {
            return if status == R::Pushing { Err("push_first") } else { Err("invalid_transition") }
        }
        "schedule_retry" | "fail" | "cancel" => true,
        "time_out" => return if status == R::Queued { Err("invalid_transition") } else { Ok(()) },
        other => panic!("unknown {other}"),
    };
    if ok {
        Ok(())
    } else {
        Err("invalid_transition")
    }
}

#[test]
fn every_status_command_pair_follows_the_lifecycle_table() {
    let mut n = 0;
    for status in ALL {
        let run = RunId::new();
        let given = reach(run, status);
        assert_eq!(RunDecider::replay(given.iter()).get().map(|r| r.status), Some(status), "fixture reaches {status}");
        for (name, cmd) in commands(run) {
            let spec = S::new().given(given.clone()).when(cmd);
            match expected(status, name) {
                Ok(()) => {
                    spec.then_matches(|e| !e.is_empty());
                }
                Err(rule) => spec.then_rejects(rule),
            }
            n += 1;
        }
    }
    assert_eq!(n, 11 * 12);
}

#[test]
fn commands_on_a_missing_run_are_not_found() {
    for (name, cmd) in commands(RunId::new()) {
        if name != "request" {
            S::new().when(cmd).then_rejects("not_found");
        }
    }
}

#[test]
fn request_queues_and_validates_branch() {
    let run = RunId::new();
    let (org, app, repo, feedback) = (OrgId::new(), AppId::new(), RepoId::new(), FeedbackId::new());
    let cmd = |branch: &str| RunCommand::Request {
        run,
        org,
        app,
        repo,
        feedback,
        branch: branch.into(),
        kind: RunKind::Initial,
        wall_clock: WALL,
        at: T0,
    };
    S::new().when(cmd("userz/a")).then(vec![RunEvent::RunQueued {
        run,
        org,
        app,
        repo,
        feedback,
        branch: "userz/a".into(),
        kind: RunKind::Initial,
        wall_clock_ms: 1_200_000,
        at: T0,
    }]);
    S::new().when(cmd("userz/../main")).then_rejects("invalid_input");
    S::new().when(cmd("")).then_rejects("invalid_input");
}

#[test]
fn first_provisioning_fixes_the_deadline_and_a_resume_keeps_it() {
    let run = RunId::new();
    S::new()
        .given(reach(run, RunStatus::Queued))
        .when(RunCommand::Provision { at: T0 })
        .then(vec![RunEvent::ProvisioningStarted { at: T0, deadline_at: T0 + WALL, attempt: 1 }]);
    let later = T0 + Duration::from_secs(90);
    S::new()
        .given(reach(run, RunStatus::Running))
        .when(RunCommand::Provision { at: later })
        .then(vec![RunEvent::ProvisioningStarted { at: later, deadline_at: T0 + WALL, attempt: 2 }]);
}

#[test]
fn a_pushed_branch_is_never_re_provisioned() {
    let run = RunId::new();
    let mut given = reach(run, RunStatus::Pushing);
    given.push(RunEvent::BranchPushed { branch: "userz/fb-1".into(), head: "h1".into() });
    S::new().given(given).when(RunCommand::Provision { at: T0 }).then_rejects("invalid_transition");
}

#[test]
fn agent_exits_map_to_outcomes() {
    let run = RunId::new();
    for (exit, tail) in [
        (SandboxExit::Completed, None),
        (SandboxExit::TimedOut, Some(RunEvent::RunTimedOut { at: T0 })),
        (
            SandboxExit::AgentFailed { reason: "gave up".into() },
            Some(RunEvent::RunFailed { reason: "agent failed: gave up".into(), at: T0 }),
        ),
        (
            SandboxExit::LimitExceeded { limit: "memory".into() },
            Some(RunEvent::RunFailed { reason: "sandbox limit exceeded: memory".into(), at: T0 }),
        ),
    ] {
        let mut expected =
            vec![RunEvent::AgentFinished { exit: exit.clone(), usage: usage(), transcript: None, at: T0 }];
        expected.extend(tail);
        S::new()
            .given(reach(run, RunStatus::Running))
            .when(RunCommand::FinishAgent { exit, usage: usage(), transcript: None, egress: vec![], at: T0 })
            .then(expected);
    }
}

#[test]
fn every_egress_decision_is_an_audit_event_denials_first_and_capped() {
    let run = RunId::new();
    let record =
        |target: &str, allowed: bool, rule: &str| EgressRecord { target: target.into(), allowed, rule: rule.into() };
    let egress = vec![
        record("model.egress.internal:80", true, "model_route"),
        record("evil.example:443", false, "not_allowlisted"),
        record("127.0.0.1:5432", false, "address_denied"),
    ];
    S::new()
        .given(reach(run, RunStatus::Running))
        .when(RunCommand::FinishAgent {
            exit: SandboxExit::Completed,
            usage: usage(),
            transcript: None,
            egress,
            at: T0,
        })
        .then(vec![
            RunEvent::EgressDenied { target: "evil.example:443".into(), rule: "not_allowlisted".into(), at: T0 },
            RunEvent::EgressDenied { target: "127.0.0.1:5432".into(), rule: "address_denied".into(), at: T0 },
            RunEvent::EgressAllowed { target: "model.egress.internal:80".into(), rule: "model_route".into(), at: T0 },
            RunEvent::AgentFinished { exit: SandboxExit::Completed, usage: usage(), transcript: None, at: T0 },
        ]);
    // A flood: every denial is kept ahead of allowed decisions; the rest is counted.
    let mut flood: Vec<_> =
        (0..MAX_EGRESS_EVENTS).map(|i| record(&format!("ok{i}:443"), true, "allowlisted")).collect();
    flood.extend((0..7).map(|i| record(&format!("bad{i}:80"), false, "not_allowlisted")));
    S::new()
        .given(reach(run, RunStatus::Running))
        .when(RunCommand::FinishAgent {
            exit: SandboxExit::Completed,
            usage: usage(),
            transcript: None,
            egress: flood,
            at: T0,
        })
        .then_matches(|events| {
            let denied = events.iter().filter(|e| matches!(e, RunEvent::EgressDenied { .. })).count();
            let allowed = events.iter().filter(|e| matches!(e, RunEvent::EgressAllowed { .. })).count();
            denied == 7
                && allowed == MAX_EGRESS_EVENTS - 7
                && events.contains(&RunEvent::EgressTruncated { allowed: 7, denied: 0, at: T0 })
        });
}

#[test]
fn guardrail_refusal_names_first_file_and_rule() {
    let run = RunId::new();
    let violations = vec![
        Violation { file: "infra/main.tf".into(), rule: "infra/**".into() },
        Violation { file: ".env".into(), rule: ".env".into() },
    ];
    let state = S::new()
        .given(reach(run, RunStatus::Checking))
        .when(RunCommand::RecordGuardrail { changed_paths: 3, violations: violations.clone() })
        .then(vec![RunEvent::GuardrailRefused { file: "infra/main.tf".into(), rule: "infra/**".into(), violations }]);
    assert_eq!(state.get().map(|r| r.status), Some(RunStatus::PrFailed));
}

#[test]
fn push_then_pr_opens_and_repeated_push_is_a_no_op() {
    let run = RunId::new();
    let mut given = reach(run, RunStatus::Pushing);
    S::new()
        .given(given.clone())
        .when(RunCommand::RecordPush { branch: "userz/fb-1".into(), head: "h1".into() })
        .then(vec![RunEvent::BranchPushed { branch: "userz/fb-1".into(), head: "h1".into() }]);
    S::new()
        .given(given.clone())
        .when(RunCommand::RecordPush { branch: "other".into(), head: "h1".into() })
        .then_rejects("branch_mismatch");
    given.push(RunEvent::BranchPushed { branch: "userz/fb-1".into(), head: "h1".into() });
    S::new()
        .given(given.clone())
        .when(RunCommand::RecordPush { branch: "userz/fb-1".into(), head: "h1".into() })
        .then(vec![]);
    S::new()
        .given(given.clone())
        .when(RunCommand::RecordPr { number: 4, url: "u".into(), created: false, at: T0 })
        .then(vec![RunEvent::PrOpened { number: 4, url: "u".into(), created: false, at: T0 }]);
    S::new()
        .given(given)
        .when(RunCommand::CompleteBranchOnly { at: T0 })
        .then(vec![RunEvent::BranchOnlyCompleted { at: T0 }]);
}

#[test]
fn time_out_only_after_the_deadline() {
    let run = RunId::new();
    S::new()
        .given(reach(run, RunStatus::Running))
        .when(RunCommand::TimeOut { at: T0 })
        .then_rejects("deadline_not_reached");
    S::new()
        .given(reach(run, RunStatus::Running))
        .when(RunCommand::TimeOut { at: T0 + WALL })
        .then(vec![RunEvent::RunTimedOut { at: T0 + WALL }]);
}

#[test]
fn revision_runs_carry_pr_and_comments() {
    let run = RunId::new();
    let pr = PrId::new();
    let comments = vec![CommentId::new()];
    let kind = RunKind::Revision { pr, pr_number: 3, comments };
    let state = S::new()
        .when(RunCommand::Request {
            run,
            org: OrgId::new(),
            app: AppId::new(),
            repo: RepoId::new(),
            feedback: FeedbackId::new(),
            branch: "userz/fb-1".into(),
            kind: kind.clone(),
            wall_clock: WALL,
            at: T0,
        })
        .then_matches(|e| matches!(&e[0], RunEvent::RunQueued { kind: k, .. } if *k == kind));
    assert_eq!(state.get().map(|r| r.kind.clone()), Some(kind));
}
