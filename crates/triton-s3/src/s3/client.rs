//! Building an S3 client the standard way.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use triton_aws::Timeouts;

/// The AWS configuration for `region` ([`triton_aws::sdk_config`]: the
/// default chains, the endpoint from `AWS_ENDPOINT_URL_S3` /
/// `AWS_ENDPOINT_URL`, the SDK's retries off: the store retries each request
/// itself, with a log line per retry, and a body read that fails half-way
/// resumes at the byte it stopped at instead of starting over).
pub async fn sdk_config(region: &str) -> SdkConfig {
    triton_aws::sdk_config(region).await
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
    let mut config = aws_sdk_s3::config::Builder::from(shared);
    // A configuration loaded without triton_aws::loader has no HTTP
    // client (the SDK's default one is not built).
    if shared.http_client().is_none() {
        config.set_http_client(Some(triton_aws::https_client()));
    }
    let config = config
        .retry_config(triton_aws::retries_off())
        .timeout_config(triton_aws::timeouts(Timeouts {
            connect: Duration::from_secs(5),
            // Generous: one attempt may carry a whole upload part.
            attempt: Duration::from_secs(300),
        }))
        .force_path_style(custom_endpoint)
        .build();
    Client::from_conf(config)
}
