//! Reading one archive's metadata sidecar.

use crate::archiver::{Metadata, METADATA_SUFFIX};
use crate::error::StoreError;
use crate::store::read_object;
use crate::store::ArchiveStore;

/// Why a sidecar could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object is not a sidecar.
    #[error("{key}: {reason}")]
    Invalid {
        /// The sidecar's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The sidecar of the archive `archive_key` (the object
/// `<archive_key>.metadata`), or `None` if it has none.
pub async fn read_sidecar(
    store: &dyn ArchiveStore,
    archive_key: &str,
) -> Result<Option<Metadata>, SidecarError> {
    let key = format!("{archive_key}{METADATA_SUFFIX}");
    let Some(bytes) = read_object(store, &key).await? else {
        return Ok(None);
    };
    Metadata::parse(&bytes)
        .map(Some)
        .map_err(|reason| SidecarError::Invalid { key, reason })
}
