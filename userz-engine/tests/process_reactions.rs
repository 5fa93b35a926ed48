//! The pipeline process manager as a table: given the aggregates an event's
//! reaction reads, when the event is handled, then exactly these actions (or
//! none). Ids are derived from the causing event, so the same event always
//! yields the same actions: that is what makes replay after a crash safe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use userz_core::domain::app::{App, AppSettings};
use userz_core::domain::common::{Actor, ProcessingMode};
use userz_core::domain::feedback::{Feedback, FeedbackCommand, FeedbackContent, FeedbackEvent, RunResult, Stage};
use userz_core::domain::pr::{PrCommand, PrEvent, PullRequest};
use userz_core::domain::repo::{Provider, Repo};
use userz_core::domain::run::{AgentRun, RunCommand, RunEvent, RunKind, RunStatus, Timings};
use userz_core::domain::timer::{TimerCommand, TimerEvent, TimerTarget};
use userz_core::ids::{AppId, CommentId, FeedbackId, JobId, OrgId, PrId, RepoId, RunId, TimerId};
use userz_core::ports::{Classification, Label, Usage};
use userz_core::{StreamId, Timestamp};
use userz_engine::process::{needs, react, Action, Cause, Job, Needs, PipelineView, Policy};
use userz_engine::{queues, AnyEvent};

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

struct World {
    org: OrgId,
    app: AppId,
    repo: RepoId,
    feedback: FeedbackId,
}

impl World {
    fn new() -> Self {
        Self { org: OrgId::new(), app: AppId::new(), repo: RepoId::new(), feedback: FeedbackId::new() }
    }

    fn report(&self, stage: Stage, label: Option<Label>) -> Feedback {
        Feedback {
            feedback: self.feedback,
            org: self.org,
            app: self.app,
            content: FeedbackContent::text("Save does nothing"),
            received_at: NOW,
            stage,
            classification: label.map(|label| Classification {
                label,
                confidence: 0.9,
                signals: vec![],
                classifier: "table".into(),
            }),
            duplicates: vec![],
            consolidated: None,
            runs: vec![],
        }
    }

    fn app(&self, repo: Option<RepoId>) -> App {
        App {
            app: self.app,
            org: self.org,
            name: "web".into(),
            public_key: "pub_x".into(),
            settings: AppSettings { processing_mode: ProcessingMode::AutoPr, ..AppSettings::default() },
            repo,
            archived: false,
        }
    }

    fn repo(&self) -> Repo {
        Repo {
            repo: self.repo,
            org: self.org,
            app: self.app,
            provider: Provider::Git { remote: "file:///tmp/r.git".into() },
            base_branch: None,
            branch_prefix: "userz/".into(),
            forbidden_paths: vec![],
        }
    }

    fn run(&self, run: RunId, kind: RunKind, status: RunStatus, deadline: bool) -> AgentRun {
        AgentRun {
            run,
            org: self.org,
            app: self.app,
            repo: self.repo,
            feedback: self.feedback,
            branch: "userz/fb-1".into(),
            kind,
            status,
            wall_clock_ms: 1_200_000,
            deadline_at: deadline.then_some(NOW),
            attempts: 1,
            base_commit: None,
            sandbox: None,
            pushed_head: None,
            usage: Usage::default(),
            transcript: None,
            violation: None,
            pr: None,
            failure: None,
            retries: 0,
            timings: Timings::default(),
        }
    }

    fn pr(&self, pr: PrId) -> PullRequest {
        PullRequest {
            pr,
            org: self.org,
            repo: self.repo,
            feedback: self.feedback,
            number: 7,
            url: "https://forge.invalid/pr/7".into(),
            branch: "userz/fb-1".into(),
            runs: vec![],
            comments: vec![],
            revision_in_flight: None,
            closed: None,
        }
    }
}

fn policy() -> Policy {
    Policy { run_wall_clock: Duration::from_secs(600), now: NOW }
}

fn cause(stream: String) -> Cause {
    Cause { event: uuid::Uuid::new_v4(), stream: StreamId::new(stream).unwrap() }
}

#[track_caller]
fn then(cause: &Cause, event: AnyEvent, view: PipelineView, expected: Vec<Action>) {
    let got = react(cause, &event, &view, &policy()).unwrap();
    assert_eq!(got, expected, "event {event:?}");
    // Pure and deterministic: the same inputs, the same actions.
    assert_eq!(react(cause, &event, &view, &policy()).unwrap(), got);
}

#[test]
fn received_enqueues_classification() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let ev = AnyEvent::Feedback(FeedbackEvent::FeedbackReceived {
        feedback: w.feedback,
        org: w.org,
        app: w.app,
        content: FeedbackContent::text("x"),
        received_at: NOW,
    });
    let expected = vec![Action::Enqueue {
        id: JobId::derived(c.event, "sanitize"),
        queue: queues::SANITIZE,
        job: Job::Sanitize { feedback: w.feedback },
    }];
    then(&c, ev, PipelineView::default(), expected);
}

fn queued_view(w: &World, stage: Stage, label: Option<Label>, linked: bool) -> PipelineView {
    PipelineView {
        feedback: Some(w.report(stage, label)),
        app: Some(w.app(linked.then_some(w.repo))),
        repo: Some(w.repo()),
        ..PipelineView::default()
    }
}

fn start_actions(w: &World, c: &Cause) -> Vec<Action> {
    let run = RunId::derived(c.event, "run");
    let fb_hex = w.feedback.as_uuid().simple().to_string();
    let run_hex = run.as_uuid().simple().to_string();
    vec![
        Action::Run {
            id: run,
            purpose: "request",
            command: RunCommand::Request {
                run,
                org: w.org,
                app: w.app,
                repo: w.repo,
                feedback: w.feedback,
                branch: format!("userz/fb-{}-{}", &fb_hex[20..], &run_hex[24..]),
                kind: RunKind::Initial,
                wall_clock: Duration::from_secs(600),
                at: NOW,
            },
        },
        Action::Feedback { id: w.feedback, purpose: "start_run", command: FeedbackCommand::StartRun { run } },
        Action::Enqueue {
            id: JobId::derived(run.as_uuid(), "execute"),
            queue: queues::RUNS,
            job: Job::ExecuteRun { run },
        },
    ]
}

#[test]
fn queued_benign_report_starts_one_run_on_the_linked_repo() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let ev = AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by: Actor::System });
    let expected = start_actions(&w, &c);
    then(&c, ev, queued_view(&w, Stage::Queued, Some(Label::Benign), true), expected);
}

#[test]
fn queued_report_already_running_this_run_resumes_with_the_same_actions() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let run = RunId::derived(c.event, "run");
    let ev = AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by: Actor::System });
    let expected = start_actions(&w, &c);
    then(&c, ev, queued_view(&w, Stage::Running { run }, Some(Label::Benign), true), expected);
}

#[test]
fn queued_report_starts_nothing_when_it_must_not() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let ev = || AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by: Actor::System });
    // Not benign (G3 defence in depth), whatever the stage says.
    for label in [None, Some(Label::MaliciousInjection), Some(Label::Spam), Some(Label::Abuse), Some(Label::OffTopic)] {
        then(&c, ev(), queued_view(&w, Stage::Queued, label, true), vec![]);
    }
    // Another run is already going, or the report moved on.
    then(&c, ev(), queued_view(&w, Stage::Running { run: RunId::new() }, Some(Label::Benign), true), vec![]);
    then(&c, ev(), queued_view(&w, Stage::Archived, Some(Label::Benign), true), vec![]);
    // No repository linked to the App, or none loaded, or no App, or no report.
    then(&c, ev(), queued_view(&w, Stage::Queued, Some(Label::Benign), false), vec![]);
    let mut no_repo = queued_view(&w, Stage::Queued, Some(Label::Benign), true);
    no_repo.repo = None;
    then(&c, ev(), no_repo, vec![]);
    let mut no_app = queued_view(&w, Stage::Queued, Some(Label::Benign), true);
    no_app.app = None;
    then(&c, ev(), no_app, vec![]);
    then(&c, ev(), PipelineView::default(), vec![]);
}

#[test]
fn batch_pending_schedules_the_window_and_its_firing_closes_the_batch() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let closes_at = Timestamp::from_millis(NOW.as_millis() + 3_600_000);
    let timer = TimerId::derived(c.event, "batch_window");
    then(
        &c,
        AnyEvent::Feedback(FeedbackEvent::BatchPending { closes_at }),
        PipelineView::default(),
        vec![Action::Timer {
            id: timer,
            purpose: "schedule",
            command: TimerCommand::Schedule {
                timer,
                fire_at: closes_at,
                target: TimerTarget::BatchWindow { feedback: w.feedback },
            },
        }],
    );
    let fired = || {
        AnyEvent::Timer(TimerEvent::TimerFired {
            timer,
            target: TimerTarget::BatchWindow { feedback: w.feedback },
            at: closes_at,
        })
    };
    let tc = cause(format!("timer-{timer}"));
    let view = PipelineView {
        feedback: Some(w.report(Stage::BatchPending { closes_at }, Some(Label::Benign))),
        app: Some(w.app(None)),
        ..PipelineView::default()
    };
    then(
        &tc,
        fired(),
        view,
        vec![Action::Feedback {
            id: w.feedback,
            purpose: "close_batch",
            command: FeedbackCommand::CloseBatch { mode: ProcessingMode::AutoPr },
        }],
    );
    // The App is no longer active (never created, or gone from the view): nothing.
    let no_app =
        PipelineView { feedback: Some(w.report(Stage::Queued, Some(Label::Benign))), ..PipelineView::default() };
    then(&tc, fired(), no_app, vec![]);
}

#[test]
fn provisioning_schedules_the_deadline_and_its_firing_times_the_run_out() {
    let run = RunId::new();
    let c = cause(format!("run-{run}"));
    let timer = TimerId::derived(run.as_uuid(), "deadline");
    then(
        &c,
        AnyEvent::Run(RunEvent::ProvisioningStarted { at: NOW, deadline_at: NOW, attempt: 1 }),
        PipelineView::default(),
        vec![Action::Timer {
            id: timer,
            purpose: "schedule",
            command: TimerCommand::Schedule { timer, fire_at: NOW, target: TimerTarget::RunDeadline { run } },
        }],
    );
    then(
        &cause(format!("timer-{timer}")),
        AnyEvent::Timer(TimerEvent::TimerFired { timer, target: TimerTarget::RunDeadline { run }, at: NOW }),
        PipelineView::default(),
        vec![Action::Run { id: run, purpose: "time_out", command: RunCommand::TimeOut { at: NOW } }],
    );
}

#[test]
fn an_initial_run_that_ends_reports_its_result_to_the_report() {
    let w = World::new();
    let run = RunId::new();
    let c = cause(format!("run-{run}"));
    let cancel = Action::Timer {
        id: TimerId::derived(run.as_uuid(), "deadline"),
        purpose: "cancel_deadline",
        command: TimerCommand::Cancel,
    };
    let complete = |result| Action::Feedback {
        id: w.feedback,
        purpose: "complete_run",
        command: FeedbackCommand::CompleteRun { run, result },
    };
    let view = |status, deadline| PipelineView {
        run: Some(w.run(run, RunKind::Initial, status, deadline)),
        ..PipelineView::default()
    };
    let url = "https://forge.invalid/pr/9".to_string();
    let pr = PrId::derived(run.as_uuid(), "pr");
    then(
        &c,
        AnyEvent::Run(RunEvent::PrOpened { number: 9, url: url.clone(), created: true, at: NOW }),
        view(RunStatus::PrOpened, true),
        vec![
            cancel.clone(),
            Action::Pr {
                id: pr,
                purpose: "open_pr",
                command: PrCommand::Open {
                    pr,
                    org: w.org,
                    repo: w.repo,
                    feedback: w.feedback,
                    run,
                    number: 9,
                    url: url.clone(),
                    branch: "userz/fb-1".into(),
                },
            },
            complete(RunResult::PrOpened { url, number: 9 }),
        ],
    );
    // No deadline was ever set (the run never provisioned): nothing to cancel.
    then(
        &c,
        AnyEvent::Run(RunEvent::BranchOnlyCompleted { at: NOW }),
        view(RunStatus::BranchPushed, false),
        vec![complete(RunResult::BranchPushed { branch: "userz/fb-1".into() })],
    );
    then(
        &c,
        AnyEvent::Run(RunEvent::GuardrailRefused {
            file: ".gitlab-ci.yml".into(),
            rule: ".gitlab-ci.yml".into(),
            violations: vec![],
        }),
        view(RunStatus::PrFailed, true),
        vec![
            cancel.clone(),
            complete(RunResult::PrFailed { file: ".gitlab-ci.yml".into(), rule: ".gitlab-ci.yml".into() }),
        ],
    );
    then(
        &c,
        AnyEvent::Run(RunEvent::RunFailed { reason: "push: refused".into(), at: NOW }),
        view(RunStatus::Failed, true),
        vec![cancel.clone(), complete(RunResult::Failed { reason: "push: refused".into() })],
    );
    then(
        &c,
        AnyEvent::Run(RunEvent::RunTimedOut { at: NOW }),
        view(RunStatus::TimedOut, true),
        vec![cancel.clone(), complete(RunResult::Failed { reason: "timed_out".into() })],
    );
    then(
        &c,
        AnyEvent::Run(RunEvent::RunCancelled { by: Actor::System, at: NOW }),
        view(RunStatus::Cancelled, true),
        vec![cancel, complete(RunResult::Failed { reason: "cancelled".into() })],
    );
    // The run cannot be read: nothing.
    then(&c, AnyEvent::Run(RunEvent::RunTimedOut { at: NOW }), PipelineView::default(), vec![]);
}

#[test]
fn a_revision_run_that_ends_completes_the_revision_on_its_pr() {
    let w = World::new();
    let (run, pr) = (RunId::new(), PrId::new());
    let c = cause(format!("run-{run}"));
    let kind = RunKind::Revision { pr, pr_number: 7, comments: vec![] };
    for (ev, status, updated) in [
        (RunEvent::PrOpened { number: 7, url: "u".into(), created: false, at: NOW }, RunStatus::PrOpened, true),
        (RunEvent::RunFailed { reason: "x".into(), at: NOW }, RunStatus::Failed, false),
    ] {
        then(
            &c,
            AnyEvent::Run(ev),
            PipelineView { run: Some(w.run(run, kind.clone(), status, false)), ..PipelineView::default() },
            vec![Action::Pr {
                id: pr,
                purpose: "complete_revision",
                command: PrCommand::CompleteRevision { run, updated },
            }],
        );
    }
}

#[test]
fn a_revision_request_starts_a_revision_run_on_the_same_branch() {
    let w = World::new();
    let (pr, run, comment) = (PrId::new(), RunId::new(), CommentId::new());
    let c = cause(format!("pr-{pr}"));
    let ev = || AnyEvent::Pr(PrEvent::RevisionRequested { run, comments: vec![comment] });
    let view = PipelineView {
        pr: Some(w.pr(pr)),
        feedback: Some(w.report(Stage::PrOpened { url: "u".into() }, Some(Label::Benign))),
        ..PipelineView::default()
    };
    then(
        &c,
        ev(),
        view,
        vec![
            Action::Run {
                id: run,
                purpose: "request",
                command: RunCommand::Request {
                    run,
                    org: w.org,
                    app: w.app,
                    repo: w.repo,
                    feedback: w.feedback,
                    branch: "userz/fb-1".into(),
                    kind: RunKind::Revision { pr, pr_number: 7, comments: vec![comment] },
                    wall_clock: Duration::from_secs(600),
                    at: NOW,
                },
            },
            Action::Enqueue {
                id: JobId::derived(run.as_uuid(), "execute"),
                queue: queues::RUNS,
                job: Job::ExecuteRun { run },
            },
        ],
    );
    then(&c, ev(), PipelineView { pr: Some(w.pr(pr)), ..PipelineView::default() }, vec![]);
}

#[test]
fn other_events_need_nothing_and_cause_nothing() {
    let w = World::new();
    let c = cause(format!("feedback-{}", w.feedback));
    let ev = AnyEvent::Feedback(FeedbackEvent::FeedbackArchived { by: Actor::System });
    assert_eq!(needs(&ev, &c.stream).unwrap(), Needs::default());
    then(&c, ev, queued_view(&w, Stage::Queued, Some(Label::Benign), true), vec![]);
}

#[test]
fn each_reaction_reads_only_what_it_needs() {
    let w = World::new();
    let (run, pr, timer) = (RunId::new(), PrId::new(), TimerId::new());
    let fb_stream = StreamId::new(format!("feedback-{}", w.feedback)).unwrap();
    let run_stream = StreamId::new(format!("run-{run}")).unwrap();
    let cases = [
        (
            AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by: Actor::System }),
            fb_stream.clone(),
            Needs { feedback: Some(w.feedback), app: true, repo: true, ..Needs::default() },
        ),
        (AnyEvent::Feedback(FeedbackEvent::BatchPending { closes_at: NOW }), fb_stream, Needs::default()),
        (
            AnyEvent::Run(RunEvent::RunTimedOut { at: NOW }),
            run_stream.clone(),
            Needs { run: Some(run), ..Needs::default() },
        ),
        (
            AnyEvent::Run(RunEvent::ProvisioningStarted { at: NOW, deadline_at: NOW, attempt: 1 }),
            run_stream,
            Needs::default(),
        ),
        (
            AnyEvent::Timer(TimerEvent::TimerFired {
                timer,
                target: TimerTarget::BatchWindow { feedback: w.feedback },
                at: NOW,
            }),
            StreamId::new(format!("timer-{timer}")).unwrap(),
            Needs { feedback: Some(w.feedback), app: true, ..Needs::default() },
        ),
        (
            AnyEvent::Pr(PrEvent::RevisionRequested { run, comments: vec![] }),
            StreamId::new(format!("pr-{pr}")).unwrap(),
            Needs { pr: Some(pr), feedback_of_pr: true, ..Needs::default() },
        ),
    ];
    for (event, stream, expected) in cases {
        assert_eq!(needs(&event, &stream).unwrap(), expected, "{event:?}");
    }
    // A stream name without an id is corrupt, not silently ignored.
    let bad = StreamId::new("feedback").unwrap();
    assert!(needs(&AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by: Actor::System }), &bad).is_err());
}
