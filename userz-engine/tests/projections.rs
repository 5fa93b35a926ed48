//! The feedback-list projection: newest first, cursor paging, filters by app and
//! status, duplicates hidden unless asked for, and nothing across orgs.

use std::sync::Arc;

use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackStatus};
use userz_core::ids::FeedbackId;
use userz_core::Error;
use userz_engine::projections::{feedback_page, feedback_summary};
use userz_engine::{CommandBus, CommandMeta, FeedbackQuery};
use userz_store_memory::MemoryStores;
use userz_testkit::scenarios::{seed, settle, submit, wait_status, Rig, StoreSet};
use userz_testkit::ManualClock;

fn stores() -> StoreSet {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_list_pages_filters_and_hides_duplicates() {
    let stores = stores();
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let a = seed(engine.bus(), ProcessingMode::NoPr, Dedup::Off).await;
    let b = seed(engine.bus(), ProcessingMode::NoPr, Dedup::Off).await;
    rig.classifier.label_when("buy cheap", userz_core::ports::Label::Spam);
    let store = stores.read_models.as_ref();

    // Five reports in app A (one spam), one in org B.
    let mut ids: Vec<FeedbackId> = Vec::new();
    for text in ["first", "second", "buy cheap pills", "fourth", "fifth"] {
        let id = submit(&engine, &a, text).await;
        let status = if text.starts_with("buy") { FeedbackStatus::Rejected } else { FeedbackStatus::Sanitized };
        wait_status(store, a.org, id, status).await;
        ids.push(id);
    }
    let other = submit(&engine, &b, "other org").await;
    wait_status(store, b.org, other, FeedbackStatus::Sanitized).await;

    // "fourth" becomes a duplicate of "first".
    let (lead, dup) = (ids[0], ids[3]);
    engine
        .bus()
        .execute::<FeedbackDecider>(
            &CommandBus::stream::<FeedbackDecider>(dup),
            CommandMeta::new(),
            &FeedbackCommand::MarkDuplicate { lead, similarity: Some(0.91) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    engine
        .bus()
        .execute::<FeedbackDecider>(
            &CommandBus::stream::<FeedbackDecider>(lead),
            CommandMeta::new(),
            &FeedbackCommand::AttachDuplicate { duplicate: dup },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_status(store, a.org, dup, FeedbackStatus::Duplicate).await;
    settle(&stores).await;

    let q = |status, include_duplicates, cursor: Option<String>, limit| FeedbackQuery {
        org: a.org,
        app: Some(a.app),
        status,
        include_duplicates,
        cursor,
        limit,
    };

    // Default listing: newest first, duplicates hidden, paged by 2.
    let p1 = feedback_page(store, &q(None, false, None, 2)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p1.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[4], ids[2]]);
    let p2 = feedback_page(store, &q(None, false, p1.next_cursor.clone(), 2)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p2.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1], ids[0]]);
    let p3 = feedback_page(store, &q(None, false, p2.next_cursor.clone(), 2)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(p3.items.is_empty() && p3.next_cursor.is_none(), "the listing ends");
    let lead_row = &p2.items[1];
    assert_eq!(lead_row.duplicates, vec![dup], "the lead lists its duplicate");

    // With duplicates.
    let all = feedback_page(store, &q(None, true, None, 100)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.items.len(), 5);
    assert_eq!(all.items.iter().find(|r| r.id == dup).and_then(|r| r.duplicate_of), Some(lead));

    // Status filters.
    let rejected = feedback_page(store, &q(Some(FeedbackStatus::Rejected), false, None, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rejected.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2]]);
    let dups_hidden = feedback_page(store, &q(Some(FeedbackStatus::Duplicate), false, None, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(dups_hidden.items.is_empty(), "duplicates stay hidden even when filtering on their status");
    let dups = feedback_page(store, &q(Some(FeedbackStatus::Duplicate), true, None, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dups.items.iter().map(|r| r.id).collect::<Vec<_>>(), vec![dup]);

    // Org scoping: org A's query never sees org B's report, by listing or by id.
    let org_wide = feedback_page(store, &FeedbackQuery { app: None, ..q(None, true, None, 100) })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(org_wide.items.len(), 5);
    assert!(org_wide.items.iter().all(|r| r.org == a.org));
    assert!(
        feedback_summary(store, a.org, other).await.unwrap_or_else(|e| panic!("{e}")).is_none(),
        "another org's id reads as absent"
    );
    assert!(feedback_summary(store, b.org, other).await.unwrap_or_else(|e| panic!("{e}")).is_some());

    // Bad input.
    assert!(matches!(feedback_page(store, &q(None, false, None, 0)).await, Err(Error::Invalid(_))));
    assert!(matches!(feedback_page(store, &q(None, false, None, 101)).await, Err(Error::Invalid(_))));
    assert!(matches!(feedback_page(store, &q(None, false, Some("nope".into()), 2)).await, Err(Error::Invalid(_))));
    engine.shutdown();
}

/// A checkpoint move another runner makes: (store, expected, new).
type Interference = (Arc<dyn userz_core::ports::ReadModelStore>, u64, u64);

/// Counts the events it applies, one row per event. When `interfere` is set,
/// its first apply moves the checkpoint as a concurrent runner would.
#[derive(Debug, Default)]
struct Counting {
    applied: std::sync::atomic::AtomicUsize,
    interfere: std::sync::Mutex<Option<Interference>>,
}

#[async_trait::async_trait]
impl userz_engine::projections::Projection for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    async fn apply(
        &self,
        event: &userz_core::event::RecordedEvent,
        tx: &mut userz_engine::projections::ProjectionTx<'_>,
    ) -> userz_core::Result<()> {
        self.applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let other = self.interfere.lock().unwrap_or_else(|e| panic!("{e}")).take();
        if let Some((store, expected, new)) = other {
            let mv = userz_core::ports::CheckpointMove { name: "counting".into(), expected, new };
            store.commit(userz_core::ports::ReadModelCommit { checkpoint: Some(mv), ops: Vec::new() }).await?;
        }
        tx.put("counting", event.position.to_string(), bytes::Bytes::from_static(b"1"));
        Ok(())
    }
}

async fn append_n(events: &dyn userz_core::ports::EventStore, stream: &str, n: usize) -> u64 {
    let stream = userz_core::event::StreamId::new(stream).unwrap_or_else(|e| panic!("{e}"));
    let batch = (0..n)
        .map(|k| userz_core::event::NewEvent {
            id: userz_core::ids::EventId::new(),
            event_type: "Counted".into(),
            schema_version: 1,
            payload: bytes::Bytes::from(format!("{{\"k\":{k}}}")),
            causation_id: None,
            correlation_id: userz_core::ids::CorrelationId::new(),
        })
        .collect();
    let r =
        events.append(&stream, userz_core::event::ExpectedVersion::Any, batch).await.unwrap_or_else(|e| panic!("{e}"));
    r.last_position
}

#[tokio::test]
async fn catch_up_projection_reaches_the_head_and_survives_a_concurrent_runner() {
    use userz_engine::projections::catch_up_projection;
    let s = stores();
    let (events, rm) = (s.events.as_ref(), s.read_models.as_ref());
    let p = Counting::default();
    let applied = || p.applied.load(std::sync::atomic::Ordering::SeqCst);
    let rows = |from: u64, to: u64| async move {
        let mut n = 0;
        for pos in from..=to {
            if rm.get("counting", &pos.to_string()).await.unwrap_or_else(|e| panic!("{e}")).is_some() {
                n += 1;
            }
        }
        n
    };

    // An empty log: nothing to do, checkpoint 0.
    assert_eq!(catch_up_projection(&p, events, rm, 3).await.unwrap_or_else(|e| panic!("{e}")), 0);

    // Ten events in batches of three reach the head, each applied once.
    let head = append_n(events, "counted-a", 10).await;
    assert_eq!(catch_up_projection(&p, events, rm, 3).await.unwrap_or_else(|e| panic!("{e}")), head);
    assert_eq!(applied(), 10);
    assert_eq!(rows(1, head).await, 10);
    assert_eq!(rm.checkpoint("counting").await.unwrap_or_else(|e| panic!("{e}")), head);
    // Again at the head: nothing re-applied.
    assert_eq!(catch_up_projection(&p, events, rm, 3).await.unwrap_or_else(|e| panic!("{e}")), head);
    assert_eq!(applied(), 10);

    // Five more; while the batch is applied another runner moves the
    // checkpoint past two of them. The commit conflicts, the catch-up re-reads
    // the checkpoint and applies the three after it instead of failing.
    let head2 = append_n(events, "counted-b", 5).await;
    *p.interfere.lock().unwrap_or_else(|e| panic!("{e}")) = Some((s.read_models.clone(), head, head + 2));
    assert_eq!(catch_up_projection(&p, events, rm, 100).await.unwrap_or_else(|e| panic!("{e}")), head2);
    assert_eq!(applied(), 10 + 5 + 3, "the conflicting batch, then the three after the other checkpoint");
    assert_eq!(rows(head + 3, head2).await, 3);
    assert_eq!(rm.checkpoint("counting").await.unwrap_or_else(|e| panic!("{e}")), head2);
}
