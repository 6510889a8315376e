//! Building a Kinesis client the standard way.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::Client;

/// Loads the AWS configuration for `region` through `aws-config`'s default
/// chains: credentials from the environment, profiles, SSO or instance
/// metadata, and endpoints from `AWS_ENDPOINT_URL_KINESIS` /
/// `AWS_ENDPOINT_URL` (how tests point at a local server).
///
/// The region is the stream config's: it wins over `AWS_REGION`. The SDK's
/// own retries are off because the reader and producer retry every call
/// themselves, with logging, per shard and without a budget that could run
/// out silently.
pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .load()
        .await
}

/// A Kinesis client for `region`; see [`sdk_config`].
pub async fn client(region: &str) -> Client {
    Client::new(&sdk_config(region).await)
}

/// A Kinesis client from configuration the caller loaded (with a profile,
/// an endpoint or credentials of its choice), with the retry and timeout
/// settings of [`sdk_config`] on top: the reader and producer retry every
/// call themselves.
pub fn client_from(shared: &SdkConfig) -> Client {
    let config = aws_sdk_kinesis::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .build();
    Client::from_conf(config)
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}
