//! Listing a stream's shards, with pagination and retries.

use aws_sdk_kinesis::Client;
use triton_core::error::Report;

use crate::error::KinesisError;
use triton_core::retry::{policies, retry};

/// One shard as `ListShards` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id, e.g. `shardId-000000000000`.
    pub id: String,
    /// The shard this one was split from, or one of the two it was merged
    /// from.
    pub parent: Option<String>,
    /// The other shard of a merge.
    pub adjacent_parent: Option<String>,
    /// The lowest hash key of the shard's range (a decimal 128-bit number).
    pub starting_hash_key: String,
    /// The highest hash key of the shard's range.
    pub ending_hash_key: String,
    /// The first sequence number of the shard.
    pub starting_sequence_number: String,
    /// The last sequence number the shard may hold; set once it is closed
    /// by a split or merge.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// True until a split or merge closes the shard.
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// The parent and adjacent parent, where present.
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent
            .as_deref()
            .into_iter()
            .chain(self.adjacent_parent.as_deref())
    }
}

/// Every shard of `stream` that `ListShards` reports (open ones, and closed
/// ones still within the retention period), following `NextToken`.
/// Throttling and transient failures are retried a few times with backoff.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = list_page(client, stream, token.as_deref()).await?;
        shards.extend(page.shards.unwrap_or_default().into_iter().map(to_info));
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(shards),
        }
    }
}

async fn list_page(
    client: &Client,
    stream: &str,
    token: Option<&str>,
) -> Result<aws_sdk_kinesis::operation::list_shards::ListShardsOutput, KinesisError> {
    retry(
        &policies::KINESIS_LIST,
        || async {
            // The API refuses a stream name together with a continuation token.
            let request = match token {
                Some(t) => client.list_shards().next_token(t),
                None => client.list_shards().stream_name(stream),
            };
            request
                .send()
                .await
                .map_err(|e| KinesisError::from_sdk("ListShards", stream, e))
        },
        KinesisError::is_retryable,
        |e, r| tracing::warn!(error = %Report(&e), retry_in = ?r.delay, "listing shards failed; retrying"),
    )
    .await
}

fn to_info(s: aws_sdk_kinesis::types::Shard) -> ShardInfo {
    let (starting_hash_key, ending_hash_key) = match s.hash_key_range {
        Some(r) => (r.starting_hash_key, r.ending_hash_key),
        None => (String::new(), String::new()),
    };
    let (starting_sequence_number, ending_sequence_number) = match s.sequence_number_range {
        Some(r) => (r.starting_sequence_number, r.ending_sequence_number),
        None => (String::new(), None),
    };
    ShardInfo {
        id: s.shard_id,
        parent: s.parent_shard_id.filter(|p| !p.is_empty()),
        adjacent_parent: s.adjacent_parent_shard_id.filter(|p| !p.is_empty()),
        starting_hash_key,
        ending_hash_key,
        starting_sequence_number,
        ending_sequence_number,
    }
}
