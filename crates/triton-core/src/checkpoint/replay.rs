//! [`ReplayStore`]: where a resumable replay (`triton replay --consumer`)
//! is, kept beside the checkpoints its live part saves.

use async_trait::async_trait;

use super::{Checkpoint, CheckpointStore, Result};

/// A resumable replay as saved under its consumer name and stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayState {
    /// The Unix second shards without archived lineage are read from,
    /// fixed by the first run.
    pub from: u64,
    /// The archives the first run chose, in reading order, with their
    /// sizes: a restart reads the same ones, so that its hand-off to the
    /// live stream is the same.
    pub archives: Vec<(String, u64)>,
    /// Where the replay ends, if it does.
    pub end: Option<ReplayEnd>,
    /// How far the consumer has got.
    pub position: ReplayPosition,
}

/// Where a replay with an end (`--to`) ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayEnd {
    /// The last arrival time included, in milliseconds since the Unix
    /// epoch.
    pub to_ms: i64,
}

/// How far a replay's consumer has got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayPosition {
    /// No record handled yet.
    Start,
    /// Every record of the archives before `key` and of `key` up to and
    /// including record `index` handled.
    Archive {
        /// The archive being read.
        key: String,
        /// The last record handled in it (0 = its first).
        index: u64,
    },
    /// Every archive handled: the live part goes on from the consumer's
    /// checkpoints (client = consumer name).
    Live,
}

/// Replay positions, in the database of the checkpoints the live part of
/// a replay saves (the consumer name is their client).
#[async_trait]
pub trait ReplayStore: CheckpointStore {
    /// The saved replay of `consumer` on `stream`, if any.
    async fn replay(&self, consumer: &str, stream: &str) -> Result<Option<ReplayState>>;

    /// Saves `state` as the replay of `consumer` on `stream`, replacing any
    /// earlier one.
    async fn save_replay(&self, consumer: &str, stream: &str, state: &ReplayState) -> Result<()>;

    /// In one transaction: moves the saved replay of `consumer` on `stream`
    /// to `position` and saves `checkpoints` (the hand-off, when it goes
    /// live). An error if no replay is saved; after one, all are as before.
    async fn move_replay(
        &self,
        consumer: &str,
        stream: &str,
        position: &ReplayPosition,
        checkpoints: &[Checkpoint],
    ) -> Result<()>;
}

/// Implements [`ReplayStore`] for a type by forwarding to the store an
/// expression gives (see [`forward_checkpoint_stores`](crate::forward_checkpoint_stores)).
#[doc(hidden)]
#[macro_export]
macro_rules! forward_replay_store {
    ([$($generics:tt)*] $ty:ty, |$s:ident| $target:expr) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::checkpoint::__async_trait]
        impl<$($generics)*> $crate::checkpoint::ReplayStore for $ty {
            async fn replay(
                &self,
                consumer: &str,
                stream: &str,
            ) -> Result<Option<$crate::checkpoint::ReplayState>, $crate::checkpoint::CheckpointError>
            {
                let $s = self;
                $target.replay(consumer, stream).await
            }

            async fn save_replay(
                &self,
                consumer: &str,
                stream: &str,
                state: &$crate::checkpoint::ReplayState,
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.save_replay(consumer, stream, state).await
            }

            async fn move_replay(
                &self,
                consumer: &str,
                stream: &str,
                position: &$crate::checkpoint::ReplayPosition,
                checkpoints: &[$crate::checkpoint::Checkpoint],
            ) -> Result<(), $crate::checkpoint::CheckpointError> {
                let $s = self;
                $target.move_replay(consumer, stream, position, checkpoints).await
            }
        }
    };
}

forward_replay_store!([T: ReplayStore + ?Sized] Box<T>, |s| (**s));
forward_replay_store!([T: ReplayStore + ?Sized] std::sync::Arc<T>, |s| (**s));
forward_replay_store!([T: ReplayStore + ?Sized] &T, |s| (**s));

/// The archive list as one text column: `key size` per line (keys hold no
/// spaces or line breaks).
pub fn archives_to_text(archives: &[(String, u64)]) -> String {
    let mut text = String::new();
    for (key, size) in archives {
        text.push_str(key);
        text.push(' ');
        text.push_str(&size.to_string());
        text.push('\n');
    }
    text
}

/// The archive list from [`archives_to_text`]; `None` if a line is not
/// `key size`.
pub fn archives_from_text(text: &str) -> Option<Vec<(String, u64)>> {
    text.lines()
        .map(|line| {
            let (key, size) = line.rsplit_once(' ')?;
            Some((key.to_owned(), size.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_round_trip_as_text() {
        let archives = vec![("a/b-c-1.tri".to_owned(), 0), ("d/e-f-2.tri".into(), 77)];
        let text = archives_to_text(&archives);
        assert_eq!(archives_from_text(&text), Some(archives));
        assert_eq!(archives_from_text(""), Some(vec![]));
        assert_eq!(archives_from_text("nokey\n"), None);
        assert_eq!(archives_from_text("k x\n"), None);
    }
}
