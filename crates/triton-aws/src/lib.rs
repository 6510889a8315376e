/*!
What triton's AWS adapters (`triton-kinesis`, `triton-s3`) share, so that
they need not depend on each other:

- [`sdk_config`]: the SDK configuration of every triton client (the
  default credential and endpoint chains, the SDK's own retries off because
  the adapters retry every call themselves, and connect/attempt timeouts);
- [`Failure`]: one reading of a failed SDK call (error code, HTTP status,
  whether the transport failed in a way worth retrying), which each adapter
  turns into its own error kinds;
- with the `test-util` feature, `testing`: SDK configurations for the
  local test servers.

# An HTTP client of your own

The SDK's default HTTPS client (rustls on aws-lc) is not built. What is
loaded through [`loader`] or [`sdk_config`] has [`https_client`], and the
adapters' `client_from` add it to a configuration that has none; but a
credentials provider built with `aws-config` directly (say
`ProfileFileCredentialsProvider::builder().build()`) makes its own
configuration and panics at its first request without an HTTP client.
Give it one with `.configure(&ProviderConfig::default().with_http_client(triton_aws::https_client()))`,
or turn on `aws-config`'s `default-https-client` feature in your crate.
*/
#![deny(missing_docs)]

mod config;
mod failure;
#[cfg(feature = "test-util")]
pub mod testing;

pub use self::config::{https_client, loader, retries_off, sdk_config, timeouts, Timeouts};
pub use self::failure::{Failure, Transport};
