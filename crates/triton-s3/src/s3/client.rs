//! Building an S3 client the standard way.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::Client;

/// Loads the AWS configuration for `region` through `aws-config`'s default
/// chains: credentials from the environment, profiles, SSO or instance
/// metadata, and the endpoint from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
/// (how tests point at a local server).
///
/// The region is the stream config's. The SDK's own retries are off: the
/// store retries each request itself, with a log line per retry, and a body
/// read that fails half-way resumes at the byte it stopped at instead of
/// starting over.
pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .load()
        .await
}

/// An S3 client for `region`; see [`sdk_config`].
///
/// When an endpoint is set in the environment (a local or S3-compatible
/// server), requests use path-style addressing (`http://host/bucket/key`):
/// such servers rarely resolve `bucket.host` names.
pub async fn client(region: &str) -> Client {
    client_from(&sdk_config(region).await)
}

/// An S3 client from configuration the caller loaded (with a profile, an
/// endpoint or credentials of its choice), with the retry, timeout and
/// addressing rules of [`client`] on top.
pub fn client_from(shared: &SdkConfig) -> Client {
    let custom_endpoint = shared.endpoint_url().is_some()
        || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    let config = aws_sdk_s3::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .force_path_style(custom_endpoint)
        .build();
    Client::from_conf(config)
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        // Generous: one attempt may carry a whole upload part.
        .operation_attempt_timeout(Duration::from_secs(300))
        .build()
}
