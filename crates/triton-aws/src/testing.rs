//! SDK configurations for the local test servers (kinesalite, moto), built
//! as the adapters build theirs.

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

/// The region the local servers are used in.
pub const REGION: &str = "us-east-1";

/// [`sdk_config`](crate::sdk_config) for [`REGION`] with the local servers'
/// dummy credentials (`triton-local`); the endpoint is the caller's to set
/// on the service's configuration (an `AWS_ENDPOINT_URL_<SERVICE>` variable
/// would override one set here).
pub async fn local_config() -> SdkConfig {
    crate::sdk_config(REGION)
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "triton-local",
            "triton-local",
            None,
            None,
            "tests",
        )))
        .build()
}
