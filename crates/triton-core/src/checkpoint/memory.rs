//! [`MemoryCheckpoints`]: checkpoints in a map, for tests and for tools that
//! need no persistence.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    unix_now, Checkpoint, CheckpointError, CheckpointStore, IntentId, IntentStore, ReplayPosition,
    ReplayState, ReplayStore, Result, SavedCheckpoint, SubCheckpoint, UploadIntent,
};
use crate::source::SequenceNumber;

/// (client, stream, shard).
type Key = (String, String, String);

/// Checkpoints kept in memory; lost when dropped.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    rows: Mutex<BTreeMap<Key, (SequenceNumber, i64)>>,
    /// (client, stream, key) -> document.
    intents: Mutex<BTreeMap<Key, String>>,
    /// (client, stream, shard) -> the archive holding its checkpoint.
    archives: Mutex<BTreeMap<Key, String>>,
    /// (client, stream, shard) -> where it stopped inside an aggregate.
    subs: Mutex<BTreeMap<Key, SubCheckpoint>>,
    /// (consumer, stream) -> its replay.
    replays: Mutex<BTreeMap<(String, String), ReplayState>>,
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

    /// Saves all or, if one names no client, stream or shard (as the SQL
    /// backends refuse), none.
    fn save_rows(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        if let Some(c) = checkpoints
            .iter()
            .find(|c| c.client.is_empty() || c.stream.is_empty() || c.shard.is_empty())
        {
            return Err(CheckpointError::Failed {
                db: "memory".into(),
                message: format!("cannot save a checkpoint with an empty name: {c:?}"),
                source: None,
            });
        }
        let now = unix_now();
        self.rows().extend(checkpoints.iter().map(|c| {
            (
                (c.client.clone(), c.stream.clone(), c.shard.clone()),
                (c.sequence.clone(), now),
            )
        }));
        Ok(())
    }

    fn intent_rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, String>> {
        self.intents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoints {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>> {
        let key = (client.to_owned(), stream.to_owned(), shard.to_owned());
        Ok(self.rows().get(&key).map(|(seq, _)| seq.clone()))
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        self.save_rows(checkpoints)
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>> {
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

    async fn save_subsequences(&self, subs: &[SubCheckpoint]) -> Result<()> {
        let mut rows = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        rows.extend(subs.iter().map(|s| {
            (
                (s.client.clone(), s.stream.clone(), s.shard.clone()),
                s.clone(),
            )
        }));
        Ok(())
    }

    async fn subsequences(&self, client: &str) -> Result<Vec<SubCheckpoint>> {
        let rows = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(rows
            .values()
            .filter(|s| s.client == client)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl IntentStore for MemoryCheckpoints {
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()> {
        let mut intents = self.intent_rows();
        if let Some(old) = replaces {
            intents.remove(&(intent.client.clone(), intent.stream.clone(), old.to_owned()));
        }
        intents.insert(
            (
                intent.client.clone(),
                intent.stream.clone(),
                intent.key.clone(),
            ),
            intent.document.clone(),
        );
        Ok(())
    }

    async fn complete_intent(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        // Both locks held: no reader sees one change without the other.
        let mut intents = self.intent_rows();
        let forward: Vec<Checkpoint> = {
            let rows = self.rows();
            checkpoints
                .iter()
                .filter(|c| {
                    rows.get(&(c.client.clone(), c.stream.clone(), c.shard.clone()))
                        .is_none_or(|(old, _)| c.sequence > *old)
                })
                .cloned()
                .collect()
        };
        self.save_rows(&forward)?;
        let mut archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        for c in &forward {
            archives.insert(
                (c.client.clone(), c.stream.clone(), c.shard.clone()),
                intent.key.to_owned(),
            );
        }
        intents.remove(&(
            intent.client.to_owned(),
            intent.stream.to_owned(),
            intent.key.to_owned(),
        ));
        Ok(())
    }

    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>> {
        let archives = self.archives.lock().unwrap_or_else(|e| e.into_inner());
        Ok(archives
            .iter()
            .filter(|((c, s, _), _)| c == client && s == stream)
            .map(|((_, _, shard), key)| (shard.clone(), key.clone()))
            .collect())
    }

    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>> {
        Ok(self
            .intent_rows()
            .iter()
            .filter(|((c, s, _), _)| c == client && s == stream)
            .map(|((client, stream, key), document)| UploadIntent {
                client: client.clone(),
                stream: stream.clone(),
                key: key.clone(),
                document: document.clone(),
            })
            .collect())
    }
}

#[async_trait]
impl ReplayStore for MemoryCheckpoints {
    async fn replay(&self, consumer: &str, stream: &str) -> Result<Option<ReplayState>> {
        let replays = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        Ok(replays
            .get(&(consumer.to_owned(), stream.to_owned()))
            .cloned())
    }

    async fn save_replay(&self, consumer: &str, stream: &str, state: &ReplayState) -> Result<()> {
        let mut replays = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        replays.insert((consumer.to_owned(), stream.to_owned()), state.clone());
        Ok(())
    }

    async fn move_replay(
        &self,
        consumer: &str,
        stream: &str,
        position: &ReplayPosition,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        let mut replays = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = replays.get_mut(&(consumer.to_owned(), stream.to_owned())) else {
            return Err(CheckpointError::Failed {
                db: "memory".into(),
                message: format!("no replay of {consumer} on {stream} is saved"),
                source: None,
            });
        };
        self.save_rows(checkpoints)?;
        state.position = position.clone();
        Ok(())
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
        conformance::intents(&store, "mem-intents").await;
        conformance::replays(&store, "mem-replays").await;
        conformance::concurrent_saves(Arc::new(store), "mem-concurrent").await;
    }

    /// `Box`, `Arc` and `&` of a store are stores, forwarding every method.
    #[tokio::test]
    async fn pointers_to_a_store_conform() {
        let boxed = Box::new(MemoryCheckpoints::new());
        conformance::run(&boxed, "box-").await;
        conformance::intents(&boxed, "box-intents").await;
        let shared = Arc::new(MemoryCheckpoints::new());
        conformance::run(&shared, "arc-").await;
        conformance::intents(&shared, "arc-intents").await;
        conformance::replays(&shared, "arc-replays").await;
        let store = MemoryCheckpoints::new();
        conformance::run(&&store, "ref-").await;
        conformance::intents(&&store, "ref-intents").await;
    }
}
