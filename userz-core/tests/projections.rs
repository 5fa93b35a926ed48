//! The feedback-list projection: newest first, cursor paging, filters by app and
//! status, duplicates hidden unless asked for, and nothing across orgs.

use std::sync::Arc;

use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackStatus};
use userz_core::engine::projections::{feedback_page, feedback_summary};
use userz_core::engine::{CommandBus, CommandMeta, FeedbackQuery};
use userz_core::ids::FeedbackId;
use userz_core::Error;
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
