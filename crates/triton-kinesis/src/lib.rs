/*!
Kinesis for triton, on `aws-sdk-kinesis`:

- [`KinesisReader`]: every shard of a stream as one
  [`RecordSource`](triton_core::source::RecordSource). Each shard resumes
  just after its checkpoint, checkpoints hold only what the consumer
  acknowledged, and shards created by splits and merges are read after
  their parents, so records of one partition key stay in order.
- [`Producer`]: batches records into `PutRecords` calls keyed by the
  stream config's partition key field, resending only the entries that
  failed.
- [`list_shards`] and [`client`]: the pieces both use.

Endpoints and credentials come from `aws-config`'s standard chains
(`AWS_ENDPOINT_URL_KINESIS` points the client at a local server); the
region comes from the stream config.
*/
#![deny(missing_docs)]

mod client;
mod error;
mod fleet;
mod producer;
mod reader;
mod shards;

pub use self::client::{client, client_from, sdk_config};
pub use self::error::{ErrorKind, KinesisError};
pub use self::fleet::KinesisShards;
pub use self::producer::{
    BackgroundOptions, BackgroundProducer, Delivery, ProduceError, Producer, ProducerOptions,
    ProducerStats, Receipt, WhenFull,
};
pub use self::reader::{
    Checkpointing, KinesisReader, KinesisReplay, OpenError, ReaderOptions, ShardStatus,
    StartPosition,
};
pub use self::shards::{list_shards, ShardInfo};
/// The SDK client the adapters take, re-exported so callers need no SDK dependency of their own.
pub use aws_sdk_kinesis::Client;
