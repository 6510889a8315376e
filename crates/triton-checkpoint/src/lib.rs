/*!
Checkpoint storage for triton (work in progress).

This crate will hold the Diesel implementation of the checkpoint interface for
PostgreSQL and SQLite, using the `triton_checkpoint` table shared with
go-triton (`client, stream, shard, seq_num, updated`), so existing go-triton
databases keep working unchanged.
*/
#![deny(missing_docs)]
