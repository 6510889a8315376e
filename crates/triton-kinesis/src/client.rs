//! Building a Kinesis client the standard way.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_kinesis::Client;
use triton_aws::Timeouts;

/// The AWS configuration for `region` ([`triton_aws::sdk_config`]: the
/// default chains, endpoints from `AWS_ENDPOINT_URL_KINESIS` /
/// `AWS_ENDPOINT_URL`, the SDK's retries off because the reader and
/// producer retry every call themselves, per shard).
pub async fn sdk_config(region: &str) -> SdkConfig {
    triton_aws::sdk_config(region).await
}

/// A Kinesis client for `region`; see [`sdk_config`].
pub async fn client(region: &str) -> Client {
    client_from(&sdk_config(region).await)
}

/// A Kinesis client from configuration the caller loaded (with a profile,
/// an endpoint or credentials of its choice), with the SDK's retries off
/// and Kinesis's timeouts (5 s to connect, 30 s a call) on top.
pub fn client_from(shared: &SdkConfig) -> Client {
    let mut config = aws_sdk_kinesis::config::Builder::from(shared);
    // A configuration loaded without triton_aws::loader has no HTTP
    // client (the SDK's default one is not built).
    if shared.http_client().is_none() {
        config.set_http_client(Some(triton_aws::https_client()));
    }
    let config = config
        .retry_config(triton_aws::retries_off())
        .timeout_config(triton_aws::timeouts(Timeouts {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(30),
        }))
        .build();
    Client::from_conf(config)
}
