/*!
What triton's AWS adapters (`triton-kinesis`, `triton-s3`) share, so that
they need not depend on each other:

- [`sdk_config`]: the SDK configuration of every triton client (the
  default credential and endpoint chains, the SDK's own retries off because
  the adapters retry every call themselves, and connect/attempt timeouts);
- [`Failure`]: one reading of a failed SDK call (error code, HTTP status,
  whether the transport failed in a way worth retrying), which each adapter
  turns into its own error kinds;
- with the `test-util` feature, [`testing`]: SDK configurations for the
  local test servers.
*/
#![deny(missing_docs)]

mod config;
mod failure;
#[cfg(feature = "test-util")]
pub mod testing;

pub use self::config::{https_client, loader, retries_off, sdk_config, timeouts, Timeouts};
pub use self::failure::{Failure, Transport};
