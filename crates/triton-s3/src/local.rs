//! [`LocalStore`]: archives in a local directory, laid out exactly as in a
//! bucket (`<root>/20150710/stream-store-1436553581.tri`), so that tools and
//! tests run without a server and users can archive to a mounted disk.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{ErrorKind, Result, StoreError};
use crate::store::{ArchiveStore, BodyRead, ObjectBody, ObjectInfo, PutOptions, PutReceipt};

/// A directory used as a bucket.
///
/// Writes go to a hidden temporary file next to the target, are synced to
/// disk and then renamed into place, so a reader (or a crash) never sees a
/// partial object. Files whose name starts with `.` are therefore not
/// objects: listings skip them and keys may not contain such names.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

/// Makes temporary names unique within the process (the pid makes them
/// unique between processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Bytes read from a file per `read_into`.
const READ_CHUNK: usize = 1 << 20;

impl LocalStore {
    /// A store rooted at `root`. The directory need not exist yet: writes
    /// create it, reads report it missing.
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`, refusing keys that would leave the root.
    fn path_of(&self, operation: &'static str, key: &str) -> Result<PathBuf> {
        let bad = key.is_empty()
            || key.contains('\\')
            || key.contains('\0')
            || key.split('/').any(|c| c.is_empty() || c.starts_with('.'));
        let relative = Path::new(key);
        if bad
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(StoreError::new(
                operation,
                self.target(key),
                ErrorKind::Fatal,
                "invalid key for a local directory: empty, absolute, or with a component that is empty or starts with '.'",
            ));
        }
        Ok(self.root.join(relative))
    }

    fn target(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    /// Writes through a temporary file that `fill` fills, then moves it into
    /// place: replacing (rename) or create-only (hard link, which refuses an
    /// existing target atomically).
    async fn write_via_temp<F>(
        &self,
        key: &str,
        options: &PutOptions,
        fill: F,
    ) -> Result<PutReceipt>
    where
        F: FnOnce(&Path) -> io::Result<u64> + Send + 'static,
    {
        let dest = self.path_of("write", key)?;
        let target = self.target(key);
        let create_only = options.create_only;
        let task = tokio::task::spawn_blocking(move || -> Result<(u64, String)> {
            let io_err = |e| StoreError::io("write", target.clone(), e);
            let dir = dest.parent().unwrap_or(Path::new("."));
            // Directories made for this write (a new day) must survive a
            // crash as well as the file: their parents are synced too.
            let created: Vec<&Path> = dir
                .ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                .collect();
            fs::create_dir_all(dir).map_err(io_err)?;
            let name = dest.file_name().unwrap_or_default().to_string_lossy();
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.part-{}-{n}", std::process::id()));
            let result = (|| {
                let size = fill(&temp)?;
                fs::File::open(&temp)?.sync_all()?;
                if create_only {
                    fs::hard_link(&temp, &dest)?;
                } else {
                    fs::rename(&temp, &dest)?;
                }
                // The new name must survive a crash too.
                fs::File::open(dir)?.sync_all()?;
                for d in &created {
                    // A relative root's first component has the parent "".
                    let parent = match d.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p,
                        _ => Path::new("."),
                    };
                    fs::File::open(parent)?.sync_all()?;
                }
                Ok((size, version_tag(&fs::metadata(&dest)?)))
            })();
            // After a rename this finds nothing; after a link or a failure
            // it removes the temporary name.
            let _ = fs::remove_file(&temp);
            result.map_err(io_err)
        });
        let (size, etag) = task
            .await
            .map_err(|e| StoreError::new("write", self.target(key), ErrorKind::Fatal, e))??;
        Ok(PutReceipt {
            size,
            etag,
            parts: 1,
        })
    }
}

/// Every file under `dir`, as keys relative to the root (`prefix` + name),
/// skipping hidden names.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let key = format!("{prefix}{name}");
        // Links to files are followed, as `get` does; links to directories
        // are not, so that a link cycle cannot make the walk endless.
        let linked_dir = entry.file_type()?.is_symlink() && entry.path().is_dir();
        if linked_dir {
            continue;
        }
        let meta = match fs::metadata(entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // a dangling link
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            walk(&entry.path(), &format!("{key}/"), out)?;
        } else if meta.is_file() {
            out.push(ObjectInfo {
                key,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// Changes when the file is replaced or rewritten (writes replace files by
/// renaming, so the inode changes).
fn version_tag(meta: &fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{inode:x}-{modified:x}-{:x}", meta.len())
}

struct FileBody {
    file: tokio::fs::File,
    target: String,
}

#[async_trait]
impl BodyRead for FileBody {
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        buf.reserve(READ_CHUNK);
        let mut limited = (&mut self.file).take(READ_CHUNK as u64);
        limited
            .read_buf(buf)
            .await
            .map_err(|e| StoreError::io("read", self.target.clone(), e))
    }
}

#[async_trait]
impl ArchiveStore for LocalStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        // Walk only the directory the prefix names, not the whole tree; it
        // obeys the rules of keys, so a listing cannot leave the root.
        let (dir, _) = prefix.rsplit_once('/').unwrap_or(("", ""));
        let (start, base) = match dir {
            "" => (self.root.clone(), String::new()),
            dir => (self.path_of("list", dir)?, format!("{dir}/")),
        };
        let prefix = prefix.to_string();
        let target = self.root.display().to_string();
        let listed = tokio::task::spawn_blocking(move || {
            if !root.is_dir() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
            }
            let mut out = Vec::new();
            walk(&start, &base, &mut out)?;
            out.retain(|o| o.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::new("list", target.clone(), ErrorKind::Fatal, e))?;
        listed.map_err(|e| StoreError::io("list", target, e))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path_of("stat", key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: m.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("stat", self.target(key), e)),
        }
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody> {
        let path = self.path_of("open", key)?;
        let target = self.target(key);
        let io_err = |e| StoreError::io("open", target.clone(), e);
        let mut file = tokio::fs::File::open(&path).await.map_err(io_err)?;
        let meta = file.metadata().await.map_err(io_err)?;
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset))
                .await
                .map_err(io_err)?;
        }
        Ok(ObjectBody {
            reader: Box::new(FileBody { file, target }),
            etag: version_tag(&meta),
            len: Some(meta.len().saturating_sub(offset)),
        })
    }

    async fn put_file(&self, key: &str, path: &Path, options: &PutOptions) -> Result<PutReceipt> {
        let source = path.to_path_buf();
        self.write_via_temp(key, options, move |temp| fs::copy(&source, temp))
            .await
    }

    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        options: &PutOptions,
    ) -> Result<PutReceipt> {
        self.write_via_temp(key, options, move |temp| {
            let mut f = fs::File::create(temp)?;
            f.write_all(&data)?;
            Ok(data.len() as u64)
        })
        .await
    }

    async fn check_writable(&self) -> Result<()> {
        let root = self.root.clone();
        let target = self.root.display().to_string();
        // Hidden, so listings skip it even if it outlives a crash.
        let probe = root.join(format!(".triton-probe-{}", crate::store::probe_name()));
        let task = tokio::task::spawn_blocking(move || -> Result<()> {
            if let Err(e) = fs::create_dir_all(&root) {
                let mut e = StoreError::io("create", target, e);
                if e.kind == ErrorKind::AlreadyExists {
                    // A file where the directory should be.
                    e.kind = ErrorKind::Fatal;
                    e.message.push_str(" (not a directory)");
                }
                return Err(e);
            }
            let write = |probe: &Path| -> io::Result<()> {
                let mut f = fs::File::create(probe)?;
                f.write_all(b"triton write probe: safe to delete\n")?;
                f.sync_all()
            };
            let written = write(&probe);
            let removed = fs::remove_file(&probe);
            let shown = probe.display().to_string();
            written.map_err(|e| StoreError::io("write", shown.clone(), e))?;
            removed.map_err(|e| StoreError::io("delete", shown, e))
        });
        task.await
            .map_err(|e| StoreError::new("write", self.target(""), ErrorKind::Fatal, e))?
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of("delete", key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("delete", self.target(key), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_keys_that_leave_the_root() {
        let store = LocalStore::new("/tmp/x");
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            ".hidden",
            "a/.b",
        ] {
            let e = store.path_of("open", key).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Fatal, "{key}");
        }
        assert_eq!(
            store.path_of("open", "20150710/s-store-1.tri").unwrap(),
            Path::new("/tmp/x/20150710/s-store-1.tri")
        );
    }
}
