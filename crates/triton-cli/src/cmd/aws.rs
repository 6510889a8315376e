//! `--region`, `--endpoint-url` and `--profile`, as aws-cli has them, and the
//! AWS configuration every command loads from them, checked up front.

use std::time::Duration;
use triton_core::error::Report;

use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use clap::Args;

use crate::error::CliError;

/// The AWS options of every command that talks to AWS. The standard
/// variables (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_S3`, the credentials ones)
/// keep working; these flags win over them.
#[derive(Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// AWS region of the stream [default: the stream config's region, else
    /// AWS_REGION or the profile's].
    #[arg(
        long,
        env = "TRITON_REGION",
        value_name = "REGION",
        help_heading = "AWS"
    )]
    pub region: Option<String>,

    /// Send every AWS request to this URL (a local or compatible server)
    /// instead of AWS's endpoints. AWS_ENDPOINT_URL_KINESIS and
    /// AWS_ENDPOINT_URL_S3 set one service's.
    #[arg(
        long,
        env = "TRITON_ENDPOINT_URL",
        value_name = "URL",
        help_heading = "AWS"
    )]
    pub endpoint_url: Option<String>,

    /// Use this profile of ~/.aws/config and ~/.aws/credentials.
    #[arg(long, env = "AWS_PROFILE", value_name = "NAME", help_heading = "AWS")]
    pub profile: Option<String>,
}

fn check_endpoint(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(())
}

impl AwsArgs {
    /// Loads the configuration through aws-config's default chains, in
    /// `region` unless `--region` says otherwise, and checks that
    /// credentials can be found: a missing one is one line naming the
    /// chain and the fix, not the SDK's debug output at the first request.
    pub async fn load(&self, region: Option<&str>) -> Result<SdkConfig, CliError> {
        let mut loader = triton_aws::loader();
        if let Some(region) = self.region.as_deref().or(region) {
            loader = loader.region(Region::new(region.to_owned()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &self.endpoint_url {
            check_endpoint(url).map_err(|e| CliError::new(format!("--endpoint-url {e}")))?;
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(CliError::new(
                "no AWS region: give --region, set AWS_REGION, or name the stream in a config with its region",
            ));
        }
        check_credentials(&config).await?;
        Ok(config)
    }
}

async fn check_credentials(config: &SdkConfig) -> Result<(), CliError> {
    let Some(provider) = config.credentials_provider() else {
        return Err(no_credentials());
    };
    // Bounded: the chain ends with the instance metadata service, which a
    // machine outside AWS never answers.
    let found = tokio::time::timeout(Duration::from_secs(20), provider.provide_credentials()).await;
    match found {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = ?e, "AWS credentials could not be loaded");
            match e {
                CredentialsError::CredentialsNotLoaded(_) => Err(no_credentials()),
                // The chain ends with the instance metadata service; outside
                // EC2 it answers (through a proxy) with a refusal rather
                // than not at all.
                CredentialsError::ProviderError(_) if first_line(&e).contains("IMDS") => {
                    Err(no_credentials())
                }
                other => Err(CliError::new(format!(
                    "AWS credentials could not be loaded: {} (RUST_LOG=debug shows the details)",
                    first_line(&other)
                ))),
            }
        }
        Err(_) => Err(CliError::new(
            "AWS credentials: no answer from the credential chain in 20s (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile)",
        )),
    }
}

fn no_credentials() -> CliError {
    CliError::new(
        "no AWS credentials found (tried the environment, profiles, web identity, ECS and instance metadata): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile",
    )
}

/// The error and its causes on one line.
fn first_line(e: &(dyn std::error::Error + 'static)) -> String {
    Report(e).to_string().replace('\n', " ")
}
