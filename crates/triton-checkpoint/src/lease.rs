//! [`Lease`]: one `triton store` per client and stream at a time. Two would
//! read the same shards and archive every record twice, and each would
//! take the other's in-flight uploads for interrupted ones.
//!
//! PostgreSQL: a session advisory lock on a connection of its own, released
//! when the connection closes (also when the process dies). SQLite: an
//! exclusive lock on a file beside the database, released by the system
//! when the process exits.

use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use triton_core::checkpoint::CheckpointError;

use crate::{failed, query_error, SqlCheckpoints};

/// Held while a store runs; dropping it releases it.
pub struct Lease {
    // Kept only to be dropped with the lease.
    _held: Held,
}

#[expect(dead_code, reason = "held only to be dropped with the lease")]
enum Held {
    Postgres(Box<AsyncPgConnection>),
    Sqlite(std::fs::File),
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

impl SqlCheckpoints {
    /// Takes the lease of `client` and `stream`, or `None` while another
    /// process holds it.
    pub async fn try_lease(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Option<Lease>, CheckpointError> {
        match self {
            SqlCheckpoints::Postgres(pg) => {
                let mut conn = pg.connect().await?;
                let locked: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                    .bind::<BigInt, _>(lock_key(client, stream))
                    .get_result(&mut conn)
                    .await
                    .map_err(|e| query_error(pg.db(), e))?;
                Ok(locked.locked.then_some(Lease {
                    _held: Held::Postgres(Box::new(conn)),
                }))
            }
            SqlCheckpoints::Sqlite(sqlite) => {
                // Client and stream names hold no '/' (archive key rules).
                let path = sqlite
                    .path()
                    .with_extension(format!("{stream}.{client}.lock"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| failed(sqlite.db(), &format!("{}: {e}", path.display())))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Lease {
                        _held: Held::Sqlite(file),
                    })),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(failed(
                        sqlite.db(),
                        &format!("locking {}: {e}", path.display()),
                    )),
                }
            }
        }
    }
}

/// The advisory lock's key: FNV-1a of the names, stable across processes
/// and versions (unlike std's hasher).
fn lock_key(client: &str, stream: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "triton store\0"
        .bytes()
        .chain(client.bytes())
        .chain([0])
        .chain(stream.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}
