use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use userz_core::ports::{ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::{Error, Result};

#[derive(Debug, Default)]
struct State {
    tables: HashMap<String, BTreeMap<String, Bytes>>,
    checkpoints: HashMap<String, u64>,
}

/// In-memory [`ReadModelStore`].
#[derive(Debug, Default)]
pub struct MemoryReadModelStore {
    state: Mutex<State>,
}

impl MemoryReadModelStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ReadModelStore for MemoryReadModelStore {
    async fn checkpoint(&self, name: &str) -> Result<u64> {
        Ok(self.state.lock().checkpoints.get(name).copied().unwrap_or(0))
    }

    async fn commit(&self, commit: ReadModelCommit) -> Result<()> {
        let mut st = self.state.lock();
        if let Some(cp) = &commit.checkpoint {
            let actual = st.checkpoints.get(&cp.name).copied().unwrap_or(0);
            if actual != cp.expected {
                return Err(Error::CheckpointConflict { name: cp.name.clone(), expected: cp.expected, actual });
            }
        }
        for op in commit.ops {
            match op {
                ReadModelOp::Put { table, key, value } => {
                    st.tables.entry(table).or_default().insert(key, value);
                }
                ReadModelOp::Delete { table, key } => {
                    if let Some(t) = st.tables.get_mut(&table) {
                        t.remove(&key);
                    }
                }
            }
        }
        if let Some(cp) = commit.checkpoint {
            st.checkpoints.insert(cp.name, cp.new);
        }
        Ok(())
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>> {
        Ok(self.state.lock().tables.get(table).and_then(|t| t.get(key)).cloned())
    }

    async fn scan(&self, table: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, Bytes)>> {
        let st = self.state.lock();
        let Some(t) = st.tables.get(table) else {
            return Ok(Vec::new());
        };
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        Ok(t.range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
