//! The archive store and reader, the same suite against both backends: the
//! local S3 server (moto, started by `scripts/services`) and a local
//! directory.

#[path = "../support/mod.rs"]
mod support;

mod faults;
mod layout;
mod suite;

/// Runs each suite function once per backend, as `s3::name` and
/// `local::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::support::Fixture::s3().await).await;
                }
            )*
        }
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::support::Fixture::local()).await;
                }
            )*
        }
    };
}

both_backends!(
    conforms_to_archive_store,
    objects_round_trip,
    conforms_to_record_source,
    create_only_refuses_an_existing_key,
    lists_1200_archives_of_one_day,
    reads_a_range_across_a_month_boundary,
    client_filter,
    two_clients_without_a_filter_is_an_error,
    skips_keys_that_are_not_archives,
    corrupt_archive_is_reported_and_skipped,
    resumes_a_body_that_breaks_off,
    a_changed_object_is_not_resumed,
    listing_stays_inside_the_store,
    an_end_before_the_start_is_an_error,
);
