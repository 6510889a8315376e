//! Which archives hold a stream's records for a date range (docs/format.md §4).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use triton_core::key::{self, ArchiveKey};
use triton_core::time::{self, Date};

use crate::archiver::METADATA_SUFFIX;
use crate::error::StoreError;
use crate::store::ArchiveStore;

/// What to read: a stream's archives over an inclusive range of UTC days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// The real Kinesis stream name (the config's `name`).
    pub stream: String,
    /// First day.
    pub start: Date,
    /// Last day (inclusive).
    pub end: Date,
    /// Only archives written by this client; `None` accepts one client
    /// whatever its name, and refuses a mix.
    pub client: Option<String>,
}

/// One archive object to read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Archive {
    /// The parsed name; its `Display` is the object key.
    pub key: ArchiveKey,
    /// Object size in bytes.
    pub size: u64,
}

/// Why the archives of a query could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The range is empty.
    #[error("the end date {end} is before the start date {start}")]
    EndBeforeStart {
        /// First day asked for.
        start: Date,
        /// Last day asked for.
        end: Date,
    },
    /// Several clients archived the stream in the range, and none was chosen:
    /// their archives would duplicate each other's records.
    #[error(
        "archives of {stream} from more than one client in the range: {}; choose one with a client name",
        clients.iter().map(|(c, n)| format!("{c} ({n} archives)")).collect::<Vec<_>>().join(", ")
    )]
    MixedClients {
        /// The stream.
        stream: String,
        /// Each client with its number of archives.
        clients: Vec<(String, usize)>,
    },
    /// The stream or client name cannot appear in archive names.
    #[error(transparent)]
    InvalidName(#[from] key::KeyError),
    /// Listing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a query's listing found: its archives and, beside them, the keys of
/// archives that have a metadata sidecar (whether or not the archive is
/// there).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The archives, in reading order.
    pub archives: Vec<Archive>,
    /// Keys of archives of the query with a `.metadata` sidecar.
    pub sidecars: Vec<String>,
}

/// Days listed at once.
const LIST_CONCURRENCY: usize = 8;

/// Lists the archives of `query`, in reading order: by day, then by the
/// time each was opened. Each day's prefix is listed to its last page.
/// Keys that are not archive names (sidecars such as `.metadata`, stray
/// files) are skipped with a debug log, as are archives of other streams
/// that share the prefix (stream `a` lists `a-b` too).
pub async fn list_archives(
    store: Arc<dyn ArchiveStore>,
    query: &ArchiveQuery,
) -> Result<Vec<Archive>, ListError> {
    Ok(list_with_sidecars(store, query).await?.archives)
}

/// Lists as [`list_archives`] does, and notes the sidecars beside the
/// archives (`triton audit` finds an archive whose sidecar remains).
pub async fn list_with_sidecars(
    store: Arc<dyn ArchiveStore>,
    query: &ArchiveQuery,
) -> Result<Listing, ListError> {
    if query.end < query.start {
        return Err(ListError::EndBeforeStart {
            start: query.start,
            end: query.end,
        });
    }
    // Names go into prefixes: one with a `/` would list something else.
    key::validate_stream_name(&query.stream)?;
    if let Some(client) = &query.client {
        key::validate_client_name(client)?;
    }
    let mut days = time::days_inclusive(query.start, query.end);
    let mut tasks = JoinSet::new();
    let mut archives = Vec::new();
    let mut sidecars = Vec::new();
    loop {
        while tasks.len() < LIST_CONCURRENCY {
            let Some(day) = days.next() else { break };
            let prefix = match &query.client {
                Some(c) => key::client_prefix(day, &query.stream, c),
                None => key::day_prefix(day, &query.stream),
            };
            let store = store.clone();
            tasks.spawn(async move { store.list(&prefix).await });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let listed = joined
            .map_err(|e| StoreError::new("list", store.url(), crate::ErrorKind::Fatal, e))??;
        for object in listed {
            if let Some(archive) = object.key.strip_suffix(METADATA_SUFFIX) {
                if ArchiveKey::parse(archive)
                    .is_ok_and(|k| k.matches(&query.stream, query.client.as_deref()))
                {
                    sidecars.push(archive.to_owned());
                }
                continue;
            }
            match ArchiveKey::parse(&object.key) {
                Ok(key) if key.matches(&query.stream, query.client.as_deref()) => {
                    archives.push(Archive {
                        key,
                        size: object.size,
                    });
                }
                Ok(_) => tracing::debug!(key = object.key, "skipped: another stream's archive"),
                Err(e) => tracing::debug!(key = object.key, reason = %e, "skipped: not an archive"),
            }
        }
    }
    archives.sort();
    if query.client.is_none() {
        let mut clients: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &archives {
            *clients.entry(a.key.client()).or_default() += 1;
        }
        if clients.len() > 1 {
            return Err(ListError::MixedClients {
                stream: query.stream.clone(),
                clients: clients
                    .into_iter()
                    .map(|(c, n)| (c.to_string(), n))
                    .collect(),
            });
        }
    }
    sidecars.sort();
    Ok(Listing { archives, sidecars })
}

/// Where [`list_from`] starts reading a stream's archives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromQuery {
    /// The real Kinesis stream name.
    pub stream: String,
    /// Only archives written by this client; `None` as in [`ArchiveQuery`].
    pub client: Option<String>,
    /// Unix seconds: the listing starts with the last archive opened at or
    /// before it.
    pub at: u64,
    /// Last day listed (inclusive), usually today.
    pub end: Date,
    /// Days before `at`'s listed too. An archive holds records from its
    /// opening to its sealing (`--max-file-age` later at most), so one that
    /// can still hold records of `at` was opened at most that long before:
    /// one day covers every age up to 24 hours.
    pub lookback_days: u32,
}

/// The archives of a stream from a time on, in reading order: the last
/// archive opened at or before `query.at` (archives carry no time per
/// record, so it holds records of before `at` too), and every later one to
/// `query.end`. When no archive was opened at or before `at` in the days
/// listed, all of them. Sidecars are those of the archives listed from the
/// first on. Clients are chosen as [`list_with_sidecars`] does, over the
/// whole span.
pub async fn list_from(
    store: Arc<dyn ArchiveStore>,
    query: &FromQuery,
) -> Result<Listing, ListError> {
    let at = i64::try_from(query.at).unwrap_or(i64::MAX);
    let lookback = i64::from(query.lookback_days) * 86_400;
    let start = Date::from_unix(at.saturating_sub(lookback));
    let listing = list_with_sidecars(
        store,
        &ArchiveQuery {
            stream: query.stream.clone(),
            start,
            end: query.end.max(start),
            client: query.client.clone(),
        },
    )
    .await?;
    let after = listing
        .archives
        .partition_point(|a| a.key.timestamp() <= query.at);
    let archives = listing.archives[after.saturating_sub(1)..].to_vec();
    let sidecars = match archives.first() {
        Some(first) => listing
            .sidecars
            .into_iter()
            .filter(|s| ArchiveKey::parse(s).is_ok_and(|k| k >= first.key))
            .collect(),
        None => Vec::new(),
    };
    Ok(Listing { archives, sidecars })
}
