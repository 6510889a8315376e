//! [`KinesisShards`]: a Kinesis stream as a fleet worker's
//! [`ShardSource`]: its shards, a reader of the leased ones, and replays.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use triton_core::checkpoint::CheckpointStore;
use triton_core::lease::{FinishedShards, ShardSource, ShardSpec};
use triton_core::source::{Replay, SourceError};

use crate::error::ErrorKind;
use crate::reader::{Checkpointing, KinesisReader, KinesisReplay, OpenError, ReaderOptions};
use crate::shards::list_shards;

/// A stream read by a fleet worker: each generation opens a
/// [`KinesisReader`] of the leased shards with `options`.
#[derive(Debug)]
pub struct KinesisShards {
    client: Client,
    stream: String,
    consumer: String,
    resume: bool,
    options: ReaderOptions,
    replay: KinesisReplay,
}

impl KinesisShards {
    /// `stream` read as `consumer` (the client name of its checkpoints);
    /// `resume`: start after the checkpoints (false: `--skip-to-latest`).
    pub fn new(
        client: Client,
        stream: impl Into<String>,
        consumer: impl Into<String>,
        resume: bool,
        options: ReaderOptions,
    ) -> KinesisShards {
        let stream = stream.into();
        KinesisShards {
            replay: KinesisReplay::new(client.clone(), stream.clone()),
            client,
            stream,
            consumer: consumer.into(),
            resume,
            options,
        }
    }
}

#[async_trait]
impl ShardSource for KinesisShards {
    type Source = KinesisReader;

    async fn shards(&self) -> Result<Vec<ShardSpec>, SourceError> {
        let what = format!("Kinesis stream {}", self.stream);
        let shards = list_shards(&self.client, &self.stream).await.map_err(|e| {
            match (e.is_retryable(), e.kind) {
                (true, _) => SourceError::unavailable(what.clone(), e),
                (false, ErrorKind::NotFound) => SourceError::not_found(what.clone(), e),
                (false, _) => SourceError::failed(what.clone(), e),
            }
        })?;
        Ok(shards
            .into_iter()
            .map(|s| ShardSpec {
                parents: s.parents().map(str::to_owned).collect(),
                shard: s.id,
            })
            .collect())
    }

    async fn open(
        &self,
        shards: BTreeSet<String>,
        checkpoints: Arc<dyn CheckpointStore>,
        finished: FinishedShards,
    ) -> Result<KinesisReader, SourceError> {
        let mut options = self.options.clone();
        options.only = Some(shards);
        options.finished = Some(finished);
        let checkpointing = Checkpointing {
            store: checkpoints,
            client: self.consumer.clone(),
            resume: self.resume,
        };
        let what = format!("Kinesis stream {}", self.stream);
        KinesisReader::open(
            self.client.clone(),
            &self.stream,
            options,
            Some(checkpointing),
        )
        .await
        .map_err(|e| {
            let retryable = match &e {
                OpenError::Kinesis(k) => k.is_retryable(),
                OpenError::Checkpoint(c) => c.is_retryable(),
                _ => false,
            };
            match retryable {
                true => SourceError::unavailable(what.clone(), e),
                false => SourceError::failed(what.clone(), e),
            }
        })
    }

    fn replay(&self) -> &dyn Replay {
        &self.replay
    }
}
