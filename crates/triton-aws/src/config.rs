//! Loading the SDK configuration the way every triton client wants it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

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
    loader()
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(Timeouts::default()))
        .load()
        .await
}

/// `aws-config`'s default loader with [`https_client`]: start here to load
/// a configuration with settings of your own (a profile, an endpoint).
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// The HTTP client of triton's AWS clients: the SDK's own (hyper 1), over
/// rustls with the *ring* provider, which the PostgreSQL driver uses too,
/// so that one TLS stack is built instead of also aws-lc, whose C library
/// is the slowest part of a clean build. As the SDK's default client, it
/// honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` and the per-service
/// connect timeouts.
pub fn https_client() -> SharedHttpClient {
    // The connector function is how the SDK builds its default client
    // (aws-smithy-runtime's `default_https_client`); the public
    // `build_https` has no proxy setting.
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = Connector::builder().tls_provider(Provider::Rustls(CryptoMode::Ring));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
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
