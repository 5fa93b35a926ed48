//! Given/when/then specification of the feedback lifecycle: every allowed
//! transition with its exact events, and a rejection for every forbidden
//! (status, command) pair.

use userz_core::domain::common::{Actor, Dedup, ProcessingMode};
use userz_core::domain::feedback::*;
use userz_core::ids::{AppId, FeedbackId, OrgId, RunId};
use userz_core::ports::{Classification, Label};
use userz_core::{Sensitive, Timestamp};
use userz_testkit::spec::Spec;

type S = Spec<FeedbackDecider>;

struct Ids {
    fb: FeedbackId,
    org: OrgId,
    app: AppId,
    run: RunId,
    lead: FeedbackId,
}

fn ids() -> Ids {
    Ids { fb: FeedbackId::new(), org: OrgId::new(), app: AppId::new(), run: RunId::new(), lead: FeedbackId::new() }
}

const T0: Timestamp = Timestamp::from_millis(1_000_000);

fn received(i: &Ids) -> FeedbackEvent {
    FeedbackEvent::FeedbackReceived {
        feedback: i.fb,
        org: i.org,
        app: i.app,
        content: FeedbackContent::text("it breaks"),
        received_at: T0,
    }
}

fn classified(label: Label) -> FeedbackEvent {
    FeedbackEvent::Classified { label, confidence: 0.9, signals: vec![], classifier: "t".into() }
}

fn verdict(label: Label) -> Classification {
    Classification { label, confidence: 0.9, signals: vec![], classifier: "t".into() }
}

fn routing(mode: ProcessingMode, dedup: Dedup) -> Routing {
    Routing { mode, dedup, now: T0 }
}

/// Every status, with the events that reach it.
fn reach(i: &Ids, status: FeedbackStatus) -> Vec<FeedbackEvent> {
    use FeedbackEvent as E;
    let base = || vec![received(i), E::SanitizingStarted {}];
    let benign = || {
        let mut v = base();
        v.push(classified(Label::Benign));
        v
    };
    let queued = || {
        let mut v = benign();
        v.push(E::FeedbackQueued { by: Actor::System });
        v
    };
    let running = || {
        let mut v = queued();
        v.push(E::RunStarted { run: i.run });
        v
    };
    let ended = |result: RunResult| {
        let mut v = running();
        v.push(E::RunCompleted { run: i.run, result });
        v
    };
    match status {
        FeedbackStatus::Received => vec![received(i)],
        FeedbackStatus::Sanitizing => base(),
        FeedbackStatus::Sanitized => benign(),
        FeedbackStatus::AwaitingManual => {
            let mut v = benign();
            v.push(E::AwaitingManual {});
            v
        }
        FeedbackStatus::BatchPending => {
            let mut v = benign();
            v.push(E::BatchPending { closes_at: T0 });
            v
        }
        FeedbackStatus::Queued => queued(),
        FeedbackStatus::Running => running(),
        FeedbackStatus::PrOpened => ended(RunResult::PrOpened { url: "u".into(), number: 1 }),
        FeedbackStatus::BranchPushed => ended(RunResult::BranchPushed { branch: "userz/x".into() }),
        FeedbackStatus::PrFailed => ended(RunResult::PrFailed { file: ".env".into(), rule: ".env".into() }),
        FeedbackStatus::Failed => ended(RunResult::Failed { reason: "boom".into() }),
        FeedbackStatus::Rejected => {
            let mut v = base();
            v.push(classified(Label::Spam));
            v.push(E::FeedbackRejected { label: Label::Spam });
            v
        }
        FeedbackStatus::Duplicate => {
            let mut v = benign();
            v.push(E::MarkedDuplicate { lead: i.lead, similarity: Some(0.93) });
            v
        }
        FeedbackStatus::Archived => {
            let mut v = benign();
            v.push(E::FeedbackArchived { by: Actor::System });
            v
        }
    }
}

fn commands(i: &Ids) -> Vec<(&'static str, FeedbackCommand)> {
    vec![
        (
            "submit",
            FeedbackCommand::Submit {
                feedback: i.fb,
                org: i.org,
                app: i.app,
                content: FeedbackContent::text("x"),
                received_at: T0,
            },
        ),
        ("start_sanitizing", FeedbackCommand::StartSanitizing),
        (
            "classify",
            FeedbackCommand::Classify {
                classification: verdict(Label::Benign),
                routing: routing(ProcessingMode::AutoPr, Dedup::Off),
            },
        ),
        ("close_batch", FeedbackCommand::CloseBatch { mode: ProcessingMode::AutoPr }),
        ("queue", FeedbackCommand::Queue { by: Actor::System }),
        ("start_run", FeedbackCommand::StartRun { run: RunId::new() }),
        ("complete_run", FeedbackCommand::CompleteRun { run: i.run, result: RunResult::Failed { reason: "x".into() } }),
        ("mark_duplicate", FeedbackCommand::MarkDuplicate { lead: i.lead, similarity: None }),
        ("attach_duplicate", FeedbackCommand::AttachDuplicate { duplicate: FeedbackId::new() }),
        (
            "consolidate",
            FeedbackCommand::Consolidate {
                consolidated: Consolidated { theme: "Save button".into(), description: Sensitive::new("d".into()) },
            },
        ),
        ("archive", FeedbackCommand::Archive { by: Actor::System }),
    ]
}

/// The lifecycle table: which commands each status accepts.
fn allowed(status: FeedbackStatus, command: &str) -> bool {
    use FeedbackStatus as F;
    match command {
        "submit" => false, // every listed status already exists
        "start_sanitizing" => status == F::Received,
        "classify" => status == F::Sanitizing,
        "close_batch" => status == F::BatchPending,
        "queue" => matches!(status, F::AwaitingManual | F::Failed | F::PrFailed | F::Queued),
        "start_run" => status == F::Queued,
        "complete_run" => status == F::Running,
        "mark_duplicate" => matches!(status, F::Sanitized | F::AwaitingManual | F::BatchPending | F::Queued),
        "attach_duplicate" | "consolidate" => {
            !matches!(status, F::Received | F::Sanitizing | F::Rejected | F::Duplicate | F::Archived)
        }
        "archive" => !matches!(status, F::Received | F::Sanitizing | F::Running | F::Archived),
        other => panic!("unknown command {other}"),
    }
}

#[test]
fn every_status_command_pair_follows_the_lifecycle_table() {
    let i = ids();
    let mut checked = 0;
    for status in FeedbackStatus::ALL {
        let given = reach(&i, status);
        let state = FeedbackDecider::replay(given.iter());
        assert_eq!(state.get().map(|f| f.stage.status()), Some(status), "fixture reaches {status}");
        for (name, cmd) in commands(&i) {
            let spec = S::new().given(given.clone()).when(cmd);
            if allowed(status, name) {
                spec.then_matches(|_| true);
            } else {
                let expected = match name {
                    "submit" => "already_exists",
                    "queue"
                        if matches!(
                            status,
                            FeedbackStatus::Rejected | FeedbackStatus::Received | FeedbackStatus::Sanitizing
                        ) =>
                    {
                        "not_benign"
                    }
                    _ => "invalid_transition",
                };
                spec.then_rejects(expected);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 14 * 11);
}

#[test]
fn commands_on_a_missing_report_are_not_found() {
    let i = ids();
    for (name, cmd) in commands(&i) {
        if name != "submit" {
            S::new().when(cmd).then_rejects("not_found");
        }
    }
}

use userz_core::decider::Decider;

#[test]
fn submit_records_the_report() {
    let i = ids();
    S::new()
        .when(FeedbackCommand::Submit {
            feedback: i.fb,
            org: i.org,
            app: i.app,
            content: FeedbackContent::text("it breaks"),
            received_at: T0,
        })
        .then(vec![received(&i)]);
}

#[test]
fn submit_refuses_blank_text() {
    let i = ids();
    S::new()
        .when(FeedbackCommand::Submit {
            feedback: i.fb,
            org: i.org,
            app: i.app,
            content: FeedbackContent::text("  \n"),
            received_at: T0,
        })
        .then_rejects("invalid_input");
}

#[test]
fn start_sanitizing_moves_to_sanitizing() {
    let i = ids();
    S::new()
        .given(vec![received(&i)])
        .when(FeedbackCommand::StartSanitizing)
        .then(vec![FeedbackEvent::SanitizingStarted {}]);
}

#[test]
fn benign_auto_pr_is_queued() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitizing))
        .when(FeedbackCommand::Classify {
            classification: verdict(Label::Benign),
            routing: routing(ProcessingMode::AutoPr, Dedup::Off),
        })
        .then(vec![classified(Label::Benign), FeedbackEvent::FeedbackQueued { by: Actor::System }]);
}

#[test]
fn benign_manual_awaits_a_person() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitizing))
        .when(FeedbackCommand::Classify {
            classification: verdict(Label::Benign),
            routing: routing(ProcessingMode::Manual, Dedup::Incremental),
        })
        .then(vec![classified(Label::Benign), FeedbackEvent::AwaitingManual {}]);
}

#[test]
fn benign_no_pr_stays_sanitized() {
    let i = ids();
    let state = S::new()
        .given(reach(&i, FeedbackStatus::Sanitizing))
        .when(FeedbackCommand::Classify {
            classification: verdict(Label::Benign),
            routing: routing(ProcessingMode::NoPr, Dedup::Off),
        })
        .then(vec![classified(Label::Benign)]);
    assert_eq!(state.get().map(|f| f.stage.clone()), Some(Stage::Sanitized));
}

#[test]
fn benign_with_batching_waits_for_the_window() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitizing))
        .when(FeedbackCommand::Classify {
            classification: verdict(Label::Benign),
            routing: routing(ProcessingMode::AutoPr, Dedup::Batch { window_hours: 24 }),
        })
        .then(vec![
            classified(Label::Benign),
            FeedbackEvent::BatchPending { closes_at: T0 + std::time::Duration::from_secs(24 * 3600) },
        ]);
}

#[test]
fn every_non_benign_label_is_rejected_with_its_label() {
    for label in [Label::Spam, Label::MaliciousInjection, Label::Abuse, Label::OffTopic] {
        let i = ids();
        S::new()
            .given(reach(&i, FeedbackStatus::Sanitizing))
            .when(FeedbackCommand::Classify {
                classification: verdict(label),
                routing: routing(ProcessingMode::AutoPr, Dedup::Off),
            })
            .then(vec![classified(label), FeedbackEvent::FeedbackRejected { label }]);
    }
}

#[test]
fn classify_refuses_confidence_out_of_range() {
    let i = ids();
    let mut c = verdict(Label::Benign);
    c.confidence = 1.5;
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitizing))
        .when(FeedbackCommand::Classify { classification: c, routing: routing(ProcessingMode::AutoPr, Dedup::Off) })
        .then_rejects("invalid_input");
}

#[test]
fn closing_a_batch_routes_by_mode() {
    for (mode, tail) in [
        (ProcessingMode::AutoPr, vec![FeedbackEvent::FeedbackQueued { by: Actor::System }]),
        (ProcessingMode::Manual, vec![FeedbackEvent::AwaitingManual {}]),
        (ProcessingMode::NoPr, vec![]),
    ] {
        let i = ids();
        let mut expected = vec![FeedbackEvent::BatchClosed {}];
        expected.extend(tail);
        S::new()
            .given(reach(&i, FeedbackStatus::BatchPending))
            .when(FeedbackCommand::CloseBatch { mode })
            .then(expected);
    }
}

#[test]
fn queue_from_awaiting_manual_and_after_failures() {
    for status in [FeedbackStatus::AwaitingManual, FeedbackStatus::Failed, FeedbackStatus::PrFailed] {
        let i = ids();
        let by = Actor::User { user: userz_core::ids::UserId::new() };
        S::new()
            .given(reach(&i, status))
            .when(FeedbackCommand::Queue { by: by.clone() })
            .then(vec![FeedbackEvent::FeedbackQueued { by }]);
    }
}

#[test]
fn queue_twice_is_a_no_op() {
    let i = ids();
    S::new().given(reach(&i, FeedbackStatus::Queued)).when(FeedbackCommand::Queue { by: Actor::System }).then(vec![]);
}

#[test]
fn start_run_links_the_run() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Queued))
        .when(FeedbackCommand::StartRun { run: i.run })
        .then(vec![FeedbackEvent::RunStarted { run: i.run }]);
}

#[test]
fn start_run_again_with_the_same_run_is_a_no_op() {
    let i = ids();
    S::new().given(reach(&i, FeedbackStatus::Running)).when(FeedbackCommand::StartRun { run: i.run }).then(vec![]);
}

#[test]
fn complete_run_records_each_result() {
    for result in [
        RunResult::PrOpened { url: "https://x/pr/1".into(), number: 1 },
        RunResult::BranchPushed { branch: "userz/b".into() },
        RunResult::PrFailed { file: ".github/workflows/ci.yml".into(), rule: ".github/workflows/**".into() },
        RunResult::Failed { reason: "timed_out".into() },
    ] {
        let i = ids();
        S::new()
            .given(reach(&i, FeedbackStatus::Running))
            .when(FeedbackCommand::CompleteRun { run: i.run, result: result.clone() })
            .then(vec![FeedbackEvent::RunCompleted { run: i.run, result }]);
    }
}

#[test]
fn complete_run_refuses_another_run() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Running))
        .when(FeedbackCommand::CompleteRun { run: RunId::new(), result: RunResult::Failed { reason: "x".into() } })
        .then_rejects("run_mismatch");
}

#[test]
fn mark_duplicate_links_the_lead() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitized))
        .when(FeedbackCommand::MarkDuplicate { lead: i.lead, similarity: Some(0.9) })
        .then(vec![FeedbackEvent::MarkedDuplicate { lead: i.lead, similarity: Some(0.9) }]);
}

#[test]
fn a_report_cannot_duplicate_itself() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitized))
        .when(FeedbackCommand::MarkDuplicate { lead: i.fb, similarity: None })
        .then_rejects("invalid_input");
    S::new()
        .given(reach(&i, FeedbackStatus::Sanitized))
        .when(FeedbackCommand::AttachDuplicate { duplicate: i.fb })
        .then_rejects("invalid_input");
}

#[test]
fn a_lead_with_duplicates_cannot_become_a_duplicate() {
    let i = ids();
    let mut given = reach(&i, FeedbackStatus::Sanitized);
    given.push(FeedbackEvent::DuplicateAttached { duplicate: FeedbackId::new() });
    S::new()
        .given(given)
        .when(FeedbackCommand::MarkDuplicate { lead: i.lead, similarity: None })
        .then_rejects("lead_has_duplicates");
}

#[test]
fn attach_duplicate_is_idempotent() {
    let i = ids();
    let dup = FeedbackId::new();
    let mut given = reach(&i, FeedbackStatus::PrOpened);
    given.push(FeedbackEvent::DuplicateAttached { duplicate: dup });
    S::new().given(given).when(FeedbackCommand::AttachDuplicate { duplicate: dup }).then(vec![]);
}

#[test]
fn consolidate_stores_theme_and_refuses_empty_theme() {
    let i = ids();
    let c = Consolidated { theme: "Checkout".into(), description: Sensitive::new("Several users…".into()) };
    S::new()
        .given(reach(&i, FeedbackStatus::Queued))
        .when(FeedbackCommand::Consolidate { consolidated: c.clone() })
        .then(vec![FeedbackEvent::Consolidated { consolidated: c }]);
    let bad = Consolidated { theme: " ".into(), description: Sensitive::new("d".into()) };
    S::new()
        .given(reach(&i, FeedbackStatus::Queued))
        .when(FeedbackCommand::Consolidate { consolidated: bad })
        .then_rejects("invalid_input");
}

#[test]
fn archive_from_settled_states() {
    let i = ids();
    S::new()
        .given(reach(&i, FeedbackStatus::Rejected))
        .when(FeedbackCommand::Archive { by: Actor::System })
        .then(vec![FeedbackEvent::FeedbackArchived { by: Actor::System }]);
}

#[test]
fn debug_of_feedback_events_hides_personal_data() {
    let i = ids();
    let mut content = FeedbackContent::text("my password is hunter2");
    content.reporter =
        Sensitive::new(Some(Reporter { id: Some("u1".into()), email: Some("bob@example.com".into()), name: None }));
    let ev = FeedbackEvent::FeedbackReceived { feedback: i.fb, org: i.org, app: i.app, content, received_at: T0 };
    let shown = format!("{ev:?}");
    assert!(!shown.contains("hunter2") && !shown.contains("bob@example.com"), "{shown}");
}
