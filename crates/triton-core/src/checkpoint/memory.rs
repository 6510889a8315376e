//! [`MemoryCheckpoints`]: checkpoints in a map, for tests and for tools that
//! need no persistence.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{unix_now, Checkpoint, CheckpointError, CheckpointStore, SavedCheckpoint};
use crate::source::SequenceNumber;

/// (client, stream, shard).
type Key = (String, String, String);

/// Checkpoints kept in memory; lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    rows: Mutex<BTreeMap<Key, (SequenceNumber, i64)>>,
}

impl MemoryCheckpoints {
    /// An empty store.
    pub fn new() -> MemoryCheckpoints {
        MemoryCheckpoints::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (SequenceNumber, i64)>> {
        // A panic while holding the lock cannot leave a half-applied save
        // (each save is one `extend`), so the data is still consistent.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>, CheckpointError> {
        let key = (client.to_owned(), stream.to_owned(), shard.to_owned());
        Ok(self.rows().get(&key).map(|(seq, _)| seq.clone()))
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<(), CheckpointError> {
        let now = unix_now();
        self.rows().extend(checkpoints.iter().map(|c| {
            (
                (c.client.clone(), c.stream.clone(), c.shard.clone()),
                (c.sequence.clone(), now),
            )
        }));
        Ok(())
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>, CheckpointError> {
        Ok(self
            .rows()
            .iter()
            .filter(|((c, _, _), _)| c == client)
            .map(
                |((client, stream, shard), (sequence, updated))| SavedCheckpoint {
                    checkpoint: Checkpoint {
                        client: client.clone(),
                        stream: stream.clone(),
                        shard: shard.clone(),
                        sequence: sequence.clone(),
                    },
                    updated: *updated,
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::conformance;

    #[tokio::test]
    async fn memory_store_conforms() {
        let store = MemoryCheckpoints::new();
        conformance::run(&store, "mem-").await;
        conformance::concurrent_saves(Arc::new(store), "mem-concurrent").await;
    }
}
