//! Helpers shared by triton's end-to-end tests: fixture paths, temporary
//! directories, deterministic random data.

pub mod day;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use triton_core::archive::ArchiveReader;
use triton_core::value::Record;

/// The repository's test data directory (`tests/data`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A fixture written by go-triton (`tests/data/go-triton/<name>`).
pub fn go_fixture(name: &str) -> PathBuf {
    data_dir().join("go-triton").join(name)
}

/// Reads a go-triton fixture, failing the test with the path if missing.
pub fn read_go_fixture(name: &str) -> Vec<u8> {
    let p = go_fixture(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Everything an archive yields: the records before the first error, and
/// that error's text.
pub fn read_all(bytes: &[u8]) -> (Vec<Record>, Option<triton_core::archive::ArchiveError>) {
    let mut r = ArchiveReader::new(bytes);
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Set (to anything) to keep every test's temporary directory.
pub const KEEP_TEST_DIRS: &str = "TRITON_KEEP_TEST_DIRS";

/// A directory under the system temp dir, removed with its contents on
/// drop, unless the test is failing (dropped while panicking) or
/// `TRITON_KEEP_TEST_DIRS` is set: then it is kept and its path printed.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory, named after `tag`, unique in the process.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("triton-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to the file `name` in the directory; returns its
    /// path.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            "the test failed"
        } else if std::env::var_os(KEEP_TEST_DIRS).is_some() {
            "TRITON_KEEP_TEST_DIRS is set"
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
            return;
        };
        eprintln!("kept {} ({why})", self.0.display());
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The URL of a local AWS emulator from the environment variable `var`
/// (e.g. `AWS_ENDPOINT_URL_S3`, set by scripts/test). Refuses anything but
/// plain HTTP on loopback, so that no test can reach real AWS.
pub fn local_endpoint(var: &str) -> String {
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests need the local AWS servers. Run them with \
             scripts/test, or `eval \"$(scripts/services start)\"` first."
        )
    });
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split([':', '/']).next())
        .unwrap_or("");
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "{var}={url} is not a local http://127.0.0.1 server; refusing"
    );
    url
}
