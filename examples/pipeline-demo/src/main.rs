//! Pushes one feedback report through the in-process pipeline and prints every
//! event as the engine records it.
//!
//! Storage is the in-memory adapter set. The sandbox and the repository host are
//! the testkit's scripted doubles (the real process sandbox and VCS providers are
//! separate adapter crates), and the output says so.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::ports::EventStore;
use userz_core::SystemClock;
use userz_engine::projections::feedback_summary;
use userz_store_memory::MemoryStores;
use userz_testkit::scenarios::{seed, submit, Rig, StoreSet};
use userz_testkit::ManualClock;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text =
        std::env::args().nth(1).unwrap_or_else(|| "The save button does nothing when I click it on Safari".into());
    let clock = Arc::new(ManualClock::new(userz_core::Clock::now(&SystemClock)));
    let m = MemoryStores::new(clock.clone());
    let stores =
        StoreSet { events: m.events.clone(), read_models: m.read_models.clone(), queue: m.queue.clone(), clock };
    let rig = Rig::new(stores);
    println!("userz pipeline demo: memory stores, the heuristic classifier, and a scripted sandbox and repository host (no real agent runs here)\n");

    let mut log = m.events.subscribe(0).await?;
    let printer = tokio::spawn(async move {
        while let Some(Ok(ev)) = log.next().await {
            let payload: serde_json::Value = serde_json::from_slice(&ev.payload).unwrap_or_default();
            let detail = summarize(&ev.event_type, &payload);
            println!(
                "#{:<3} {:<40} {:<22} {}",
                ev.position,
                ev.stream.as_str().chars().take(40).collect::<String>(),
                ev.event_type,
                detail
            );
        }
    });

    // The real default classifier (pre-filter + heuristics); the sandbox and the
    // repository host stay scripted.
    let deps = userz_engine::EngineDeps {
        events: m.events.clone(),
        read_models: m.read_models.clone(),
        queue: m.queue.clone(),
        clock: rig.stores.clock.clone(),
        classifier: Arc::new(userz_security::classifier::HeuristicClassifier::new()),
        sandbox: rig.sandbox.clone(),
        vcs: rig.host.clone(),
        changes: rig.host.clone(),
        envelope: None,
        blobs: None,
    };
    let engine = userz_engine::Engine::start(deps, userz_testkit::scenarios::test_config());
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, &text).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = feedback_summary(m.read_models.as_ref(), s.org, fb).await?;
        if let Some(row) = row.filter(|r| {
            matches!(
                r.status,
                FeedbackStatus::PrOpened | FeedbackStatus::PrFailed | FeedbackStatus::Rejected | FeedbackStatus::Failed
            )
        }) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            println!(
                "\nfeedback {fb} ended {} (label {:?}, PR {:?})",
                row.status,
                row.label.map(|l| l.as_str()),
                row.pr_url
            );
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err("the pipeline did not finish within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown();
    printer.abort();
    Ok(())
}

/// A short, non-sensitive description of an event (never the report text).
fn summarize(event_type: &str, p: &serde_json::Value) -> String {
    let field = |k: &str| p.get(k).map(|v| v.to_string()).unwrap_or_default();
    match event_type {
        "Classified" => format!("label={} confidence={}", field("label"), field("confidence")),
        "FeedbackRejected" => format!("label={}", field("label")),
        "RunQueued" => format!("branch={}", field("branch")),
        "ProvisioningStarted" => format!("attempt={} deadline_at={}", field("attempt"), field("deadline_at")),
        "GuardrailRefused" => format!("file={} rule={}", field("file"), field("rule")),
        "GuardrailPassed" => format!("changed_paths={}", field("changed_paths")),
        "PrOpened" => format!("url={} created={}", field("url"), field("created")),
        "RunCompleted" => format!("result={}", field("result")),
        "TimerScheduled" => format!("fire_at={}", field("fire_at")),
        _ => String::new(),
    }
}
