//! Loading the SDK configuration the way every triton client wants it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the AWS configuration for `region` through `aws-config`'s default
/// chains: credentials from the environment, profiles, SSO or instance
/// metadata, and endpoints from `AWS_ENDPOINT_URL_<SERVICE>` /
/// `AWS_ENDPOINT_URL` (how tests point at a local server).
///
/// The region is the stream config's: it wins over `AWS_REGION`. The SDK's
/// own retries are off: the adapters retry every call themselves, with a
/// log line per retry and without a budget that could run out silently.
/// The timeouts are [`Timeouts::default`]; each adapter's client sets its
/// own on top ([`timeouts`]).
pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(Timeouts::default()))
        .load()
        .await
}

/// The timeouts of one service's calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For one attempt of a call, its body included.
    pub attempt: Duration,
}

impl Default for Timeouts {
    /// 5 s to connect, 30 s an attempt.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
        }
    }
}

/// The SDK's timeout settings for `t`.
pub fn timeouts(t: Timeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .operation_attempt_timeout(t.attempt)
        .build()
}

/// What a service client built from a shared configuration needs on top:
/// the SDK's retries off, and the service's timeouts.
pub fn retries_off() -> RetryConfig {
    RetryConfig::disabled()
}
