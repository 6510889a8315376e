/*!
Kinesis adapter for triton (work in progress).

This crate will hold the live half of triton, built on `aws-sdk-kinesis`:

- a multi-shard reader implementing [`triton_core::source::RecordSource`] that
  resumes each shard `AFTER_SEQUENCE_NUMBER` of its checkpoint, follows
  resharding, and checkpoints only what the consumer acknowledged;
- a producer that batches records into `PutRecords` calls using the partition
  key named in the stream config, retrying only the failed entries.

It is deliberately empty until the checkpoint interface it depends on exists.
*/
#![deny(missing_docs)]
