//! [`ReadModelStore`] conformance.

use std::sync::Arc;

use bytes::Bytes;
use userz_core::ports::{CheckpointMove, ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::Error;

use super::unique;

fn put(table: &str, key: &str, v: &str) -> ReadModelOp {
    ReadModelOp::Put { table: table.into(), key: key.into(), value: Bytes::from(v.to_string()) }
}

/// Runs every check.
pub async fn run_all(store: Arc<dyn ReadModelStore>) {
    commit_moves_checkpoint_with_rows(store.as_ref()).await;
    checkpoint_conflict_applies_nothing(store.as_ref()).await;
    scan_is_ordered_by_prefix(store.as_ref()).await;
}

/// Rows and the checkpoint move together.
pub async fn commit_moves_checkpoint_with_rows(store: &dyn ReadModelStore) {
    let t = unique("t");
    let cp = unique("cp");
    assert_eq!(store.checkpoint(&cp).await.unwrap_or(99), 0, "unknown checkpoint is 0");
    store
        .commit(ReadModelCommit {
            checkpoint: Some(CheckpointMove { name: cp.clone(), expected: 0, new: 7 }),
            ops: vec![put(&t, "a", "1"), put(&t, "b", "2")],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.checkpoint(&cp).await.unwrap_or(0), 7);
    assert_eq!(store.get(&t, "a").await.unwrap_or_default(), Some(Bytes::from("1")));
    store
        .commit(ReadModelCommit {
            checkpoint: None,
            ops: vec![ReadModelOp::Delete { table: t.clone(), key: "a".into() }],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.get(&t, "a").await.unwrap_or_default(), None, "delete");
}

/// A stale checkpoint expectation fails and writes no row.
pub async fn checkpoint_conflict_applies_nothing(store: &dyn ReadModelStore) {
    let t = unique("t");
    let cp = unique("cp");
    store
        .commit(ReadModelCommit {
            checkpoint: Some(CheckpointMove { name: cp.clone(), expected: 0, new: 5 }),
            ops: vec![],
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = store
        .commit(ReadModelCommit {
            checkpoint: Some(CheckpointMove { name: cp.clone(), expected: 0, new: 9 }),
            ops: vec![put(&t, "x", "1")],
        })
        .await;
    match r {
        Err(Error::CheckpointConflict { actual, expected, .. }) => assert_eq!((expected, actual), (0, 5)),
        other => panic!("expected CheckpointConflict, got {other:?}"),
    }
    assert_eq!(store.get(&t, "x").await.unwrap_or_default(), None, "nothing applied");
    assert_eq!(store.checkpoint(&cp).await.unwrap_or(0), 5);
}

/// `scan` returns keys under a prefix, after a cursor, ascending, limited.
pub async fn scan_is_ordered_by_prefix(store: &dyn ReadModelStore) {
    let t = unique("t");
    let ops = ["a/3", "a/1", "b/1", "a/2", "a/10", "ab/1"].iter().map(|k| put(&t, k, k)).collect();
    store.commit(ReadModelCommit { checkpoint: None, ops }).await.unwrap_or_else(|e| panic!("{e}"));
    let keys = |rows: Vec<(String, Bytes)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(store.scan(&t, "a/", None, 10).await.unwrap_or_default()), vec!["a/1", "a/10", "a/2", "a/3"]);
    assert_eq!(keys(store.scan(&t, "a/", Some("a/10"), 10).await.unwrap_or_default()), vec!["a/2", "a/3"]);
    assert_eq!(keys(store.scan(&t, "a/", None, 2).await.unwrap_or_default()), vec!["a/1", "a/10"]);
    assert!(store.scan(&t, "zz", None, 10).await.unwrap_or_default().is_empty());
}
