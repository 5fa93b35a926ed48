//! Property: random command sequences, run through the command bus on a store,
//! never reach an invalid state, and replaying the stored events rebuilds exactly
//! the state the bus holds (snapshots included).

use std::sync::Arc;

use proptest::prelude::*;
use userz_core::decider::Decider;
use userz_core::domain::common::{Actor, Dedup, ProcessingMode};
use userz_core::domain::feedback::*;
use userz_core::domain::run::*;
use userz_core::guardrail::Violation;
use userz_core::ids::*;
use userz_core::ports::sandbox::{SandboxExit, Usage};
use userz_core::ports::{Classification, Label};
use userz_core::{Sensitive, Timestamp};
use userz_engine::{CommandBus, CommandMeta};
use userz_store_memory::MemoryStores;
use userz_testkit::ManualClock;

#[derive(Debug, Clone)]
enum FbAction {
    StartSanitizing,
    Classify(usize, usize, usize),
    CloseBatch(usize),
    Queue,
    StartRun(usize),
    CompleteRun(usize, usize),
    MarkDuplicate(bool),
    AttachDuplicate(usize),
    Consolidate,
    Archive,
}

#[derive(Debug, Clone)]
enum RunAction {
    Provision(u64),
    StartAgent,
    FinishAgent(usize),
    Guardrail(bool),
    Push(usize),
    Pr,
    BranchOnly,
    Retry,
    Fail,
    TimeOut(u64),
    Cancel,
}

fn fb_action() -> impl Strategy<Value = FbAction> {
    prop_oneof![
        3 => Just(FbAction::StartSanitizing),
        3 => (0..5usize, 0..3usize, 0..3usize).prop_map(|(a, b, c)| FbAction::Classify(a, b, c)),
        1 => (0..3usize).prop_map(FbAction::CloseBatch),
        2 => Just(FbAction::Queue),
        2 => (0..3usize).prop_map(FbAction::StartRun),
        2 => (0..3usize, 0..4usize).prop_map(|(a, b)| FbAction::CompleteRun(a, b)),
        1 => any::<bool>().prop_map(FbAction::MarkDuplicate),
        1 => (0..3usize).prop_map(FbAction::AttachDuplicate),
        1 => Just(FbAction::Consolidate),
        1 => Just(FbAction::Archive),
    ]
}

fn run_action() -> impl Strategy<Value = RunAction> {
    prop_oneof![
        3 => (0..30u64).prop_map(RunAction::Provision),
        3 => Just(RunAction::StartAgent),
        3 => (0..4usize).prop_map(RunAction::FinishAgent),
        2 => any::<bool>().prop_map(RunAction::Guardrail),
        2 => (0..2usize).prop_map(RunAction::Push),
        2 => Just(RunAction::Pr),
        1 => Just(RunAction::BranchOnly),
        1 => Just(RunAction::Retry),
        1 => Just(RunAction::Fail),
        1 => (0..40u64).prop_map(RunAction::TimeOut),
        1 => Just(RunAction::Cancel),
    ]
}

const LABELS: [Label; 5] = [Label::Benign, Label::Spam, Label::MaliciousInjection, Label::Abuse, Label::OffTopic];
const MODES: [ProcessingMode; 3] = [ProcessingMode::AutoPr, ProcessingMode::Manual, ProcessingMode::NoPr];
const MIN: u64 = 60_000;

fn t(min: u64) -> Timestamp {
    Timestamp::from_millis(1_000_000 + (min * MIN) as i64)
}

fn fb_command(a: &FbAction, me: FeedbackId, runs: &[RunId], others: &[FeedbackId]) -> FeedbackCommand {
    match a {
        FbAction::StartSanitizing => FeedbackCommand::StartSanitizing,
        FbAction::Classify(l, m, d) => FeedbackCommand::Classify {
            classification: Classification {
                label: LABELS[*l],
                confidence: 0.8,
                signals: vec![],
                classifier: "p".into(),
            },
            routing: Routing {
                mode: MODES[*m],
                dedup: [Dedup::Off, Dedup::Batch { window_hours: 2 }, Dedup::Incremental][*d],
                now: t(0),
            },
        },
        FbAction::CloseBatch(m) => FeedbackCommand::CloseBatch { mode: MODES[*m] },
        FbAction::Queue => FeedbackCommand::Queue { by: Actor::System },
        FbAction::StartRun(r) => FeedbackCommand::StartRun { run: runs[*r] },
        FbAction::CompleteRun(r, k) => FeedbackCommand::CompleteRun {
            run: runs[*r],
            result: [
                RunResult::PrOpened { url: "u".into(), number: 1 },
                RunResult::BranchPushed { branch: "b".into() },
                RunResult::PrFailed { file: ".env".into(), rule: ".env".into() },
                RunResult::Failed { reason: "r".into() },
            ][*k]
                .clone(),
        },
        FbAction::MarkDuplicate(self_lead) => {
            FeedbackCommand::MarkDuplicate { lead: if *self_lead { me } else { others[0] }, similarity: None }
        }
        FbAction::AttachDuplicate(d) => {
            FeedbackCommand::AttachDuplicate { duplicate: if *d == 2 { me } else { others[*d] } }
        }
        FbAction::Consolidate => FeedbackCommand::Consolidate {
            consolidated: Consolidated { theme: "t".into(), description: Sensitive::new("d".into()) },
        },
        FbAction::Archive => FeedbackCommand::Archive { by: Actor::System },
    }
}

fn run_command(a: &RunAction) -> RunCommand {
    match a {
        RunAction::Provision(m) => RunCommand::Provision { at: t(*m) },
        RunAction::StartAgent => RunCommand::StartAgent { base_commit: "base".into(), sandbox: None, at: t(1) },
        RunAction::FinishAgent(k) => RunCommand::FinishAgent {
            exit: [
                SandboxExit::Completed,
                SandboxExit::TimedOut,
                SandboxExit::AgentFailed { reason: "x".into() },
                SandboxExit::LimitExceeded { limit: "pids".into() },
            ][*k]
                .clone(),
            usage: Usage::default(),
            transcript: None,
            egress: Vec::new(),
            at: t(2),
        },
        RunAction::Guardrail(bad) => RunCommand::RecordGuardrail {
            changed_paths: 2,
            violations: if *bad { vec![Violation { file: "infra/x".into(), rule: "infra/**".into() }] } else { vec![] },
        },
        RunAction::Push(h) => RunCommand::RecordPush { branch: "userz/p".into(), head: format!("h{h}") },
        RunAction::Pr => RunCommand::RecordPr { number: 3, url: "u".into(), created: true, at: t(3) },
        RunAction::BranchOnly => RunCommand::CompleteBranchOnly { at: t(3) },
        RunAction::Retry => RunCommand::ScheduleRetry {
            step: "push".into(),
            attempt: 1,
            error: "e".into(),
            delay_ms: 1000,
            retry_at: t(4),
        },
        RunAction::Fail => RunCommand::Fail { reason: "f".into(), at: t(5) },
        RunAction::TimeOut(m) => RunCommand::TimeOut { at: t(*m) },
        RunAction::Cancel => RunCommand::Cancel { by: Actor::System, at: t(6) },
    }
}

fn check_feedback(f: &Feedback) -> Result<(), String> {
    let benign = f.classification.as_ref().map(|c| c.label) == Some(Label::Benign);
    match &f.stage {
        Stage::Received | Stage::Sanitizing if f.classification.is_some() => {
            return Err("classified before sanitizing ended".into())
        }
        Stage::AwaitingManual
        | Stage::BatchPending { .. }
        | Stage::Queued
        | Stage::Running { .. }
        | Stage::PrOpened { .. }
        | Stage::BranchPushed { .. }
        | Stage::PrFailed { .. }
            if !benign =>
        {
            return Err(format!("{} without a benign label", f.stage))
        }
        Stage::Rejected { label }
            if *label == Label::Benign || f.classification.as_ref().map(|c| c.label) != Some(*label) =>
        {
            return Err("rejected with an inconsistent label".into())
        }
        Stage::Running { run } if f.runs.last() != Some(run) => {
            return Err("running a run that is not the latest".into())
        }
        Stage::Duplicate { lead } if *lead == f.feedback || !f.duplicates.is_empty() => {
            return Err("bad duplicate link".into())
        }
        _ => {}
    }
    if f.duplicates.contains(&f.feedback) {
        return Err("lead lists itself".into());
    }
    let mut d = f.duplicates.clone();
    d.sort();
    d.dedup();
    if d.len() != f.duplicates.len() {
        return Err("duplicate listed twice".into());
    }
    Ok(())
}

fn check_run(r: &AgentRun) -> Result<(), String> {
    use RunStatus as S;
    if r.status != S::Queued && r.deadline_at.is_none() && !matches!(r.status, S::Failed | S::Cancelled) {
        return Err(format!("{} without a deadline", r.status));
    }
    if matches!(r.status, S::Checking | S::Pushing | S::PrOpened | S::BranchPushed | S::PrFailed)
        && r.base_commit.is_none()
    {
        return Err(format!("{} without a base commit", r.status));
    }
    if matches!(r.status, S::PrOpened | S::BranchPushed) && r.pushed_head.is_none() {
        return Err("finished without a push".into());
    }
    if r.status == S::PrOpened && r.pr.is_none() {
        return Err("pr_opened without a PR".into());
    }
    if r.status == S::PrFailed && r.violation.is_none() {
        return Err("pr_failed without a violation".into());
    }
    if r.status.is_terminal() && r.timings.finished_at.is_none() {
        return Err(format!("{} without finished_at", r.status));
    }
    if r.pushed_head.is_some()
        && !matches!(r.status, S::Pushing | S::PrOpened | S::BranchPushed | S::Failed | S::TimedOut | S::Cancelled)
    {
        return Err(format!("pushed head in {}", r.status));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_stay_valid_and_replay_to_the_same_state(
        fb_actions in proptest::collection::vec(fb_action(), 1..40),
        run_actions in proptest::collection::vec(run_action(), 1..40),
        snapshot_every in 0u64..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async {
            let stores = MemoryStores::new(Arc::new(ManualClock::at_2026()));
            let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone()).with_snapshot_every(snapshot_every);
            let me = FeedbackId::new();
            let runs = [RunId::new(), RunId::new(), RunId::new()];
            let others = [FeedbackId::new(), FeedbackId::new()];
            let fb_stream = CommandBus::stream::<FeedbackDecider>(me);
            let submit = FeedbackCommand::Submit { feedback: me, org: OrgId::new(), app: AppId::new(), content: FeedbackContent::text("x"), received_at: t(0) };
            bus.execute::<FeedbackDecider>(&fb_stream, CommandMeta::new(), &submit).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for a in &fb_actions {
                let _ = bus.execute::<FeedbackDecider>(&fb_stream, CommandMeta::new(), &fb_command(a, me, &runs, &others)).await;
                let (state, _) = bus.load::<FeedbackDecider>(&fb_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let f = state.get().ok_or_else(|| TestCaseError::fail("feedback vanished"))?;
                check_feedback(f).map_err(|e| TestCaseError::fail(format!("after {a:?}: {e}")))?;
            }
            let (held, _) = bus.load::<FeedbackDecider>(&fb_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let replayed = FeedbackDecider::replay(bus.read::<FeedbackDecider>(&fb_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?.iter().map(|(_, e)| e));
            prop_assert_eq!(held, replayed);

            let run = runs[0];
            let run_stream = CommandBus::stream::<RunDecider>(run);
            let req = RunCommand::Request { run, org: OrgId::new(), app: AppId::new(), repo: RepoId::new(), feedback: me, branch: "userz/p".into(), kind: RunKind::Initial, wall_clock: std::time::Duration::from_secs(20 * 60), at: t(0) };
            bus.execute::<RunDecider>(&run_stream, CommandMeta::new(), &req).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for a in &run_actions {
                let _ = bus.execute::<RunDecider>(&run_stream, CommandMeta::new(), &run_command(a)).await;
                let (state, _) = bus.load::<RunDecider>(&run_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let r = state.get().ok_or_else(|| TestCaseError::fail("run vanished"))?;
                check_run(r).map_err(|e| TestCaseError::fail(format!("after {a:?}: {e}")))?;
            }
            let (held, _) = bus.load::<RunDecider>(&run_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let replayed = RunDecider::replay(bus.read::<RunDecider>(&run_stream).await.map_err(|e| TestCaseError::fail(e.to_string()))?.iter().map(|(_, e)| e));
            prop_assert_eq!(held, replayed);
            Ok(())
        })?;
    }
}
