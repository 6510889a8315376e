//! Helpers shared by the CLI tests: a temporary directory per test
//! ([`Dir`]), the `triton` binary run without the caller's configuration
//! ([`TestCommand`]), its output as text, processes, and the local AWS
//! servers (a Kinesis stream with a config naming it, an S3 bucket).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triton_core::time::Date;
use triton_s3::{ArchiveStore, LocalStore, PutOptions, S3Options, S3Store};
use triton_tests::TempDir;

pub use triton_tests::go_fixture as fixture;

/// The `triton` binary under test.
pub const TRITON: &str = env!("CARGO_BIN_EXE_triton");

/// A fresh directory for one test, removed when dropped unless the test
/// failed or `TRITON_KEEP_TEST_DIRS` is set (see [`TempDir`]).
pub struct Dir(TempDir);

impl Dir {
    /// A new empty directory named after `tag`.
    pub fn new(tag: &str) -> Dir {
        Dir(TempDir::new(&format!("cli-{tag}")))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `name` in the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes the file `name`; returns its path.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        self.0.write(name, contents)
    }

    /// The URL of an SQLite database `name` in the directory.
    pub fn sqlite(&self, name: &str) -> String {
        format!("sqlite://{}", self.join(name).display())
    }
}

/// A command (the `triton` binary, or a program that runs it) without
/// RUST_LOG and without any TRITON_ variable of the caller's environment,
/// so that only what a test sets configures it.
#[derive(Debug)]
pub struct TestCommand(Command);

/// `triton` without the caller's configuration.
pub fn triton() -> TestCommand {
    TestCommand::program(TRITON)
}

impl TestCommand {
    /// `program`, with the environment cleaned as for `triton`.
    pub fn program(program: impl AsRef<OsStr>) -> TestCommand {
        let mut c = Command::new(program);
        c.env_remove("RUST_LOG");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TRITON_") {
                c.env_remove(name);
            }
        }
        TestCommand(c)
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.0.arg(arg);
        self
    }

    pub fn args<I, A>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.0.args(args);
        self
    }

    pub fn env(&mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.0.env(name, value);
        self
    }

    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.0.envs(vars);
        self
    }

    pub fn env_remove(&mut self, name: impl AsRef<OsStr>) -> &mut TestCommand {
        self.0.env_remove(name);
        self
    }

    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut TestCommand {
        self.0.stdin(s);
        self
    }

    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut TestCommand {
        self.0.stdout(s);
        self
    }

    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut TestCommand {
        self.0.stderr(s);
        self
    }

    /// Starts it.
    pub fn spawn(&mut self) -> Child {
        self.0
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.0))
    }

    /// Runs it to its end, whatever its exit code.
    pub fn output(&mut self) -> Output {
        self.0
            .output()
            .unwrap_or_else(|e| panic!("run {:?}: {e}", self.0))
    }

    /// Runs it with `input` on standard input, whatever its exit code.
    pub fn pipe(&mut self, input: &[u8]) -> Output {
        let mut child = self
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // From a thread of its own: the child may fill its output pipes
        // before it has read all of its input.
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let o = child.wait_with_output().expect("wait");
        feeder.join().unwrap().expect("feed");
        o
    }

    /// Runs it, which must succeed.
    pub fn success(&mut self) -> Output {
        let o = self.output();
        if !o.status.success() {
            panic!("{}", self.report("did not succeed", &o));
        }
        o
    }

    /// Runs it, which must exit with `code`.
    pub fn fails_with(&mut self, code: i32) -> Output {
        let o = self.output();
        if o.status.code() != Some(code) {
            panic!("{}", self.report(&format!("did not exit with {code}"), &o));
        }
        o
    }

    /// What a failed check says: the command, its exit status and output.
    fn report(&self, what: &str, o: &Output) -> String {
        format!(
            "{:?} {what}: {}\n--- stdout\n{}--- stderr\n{}",
            self.0,
            o.status,
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    }
}

/// What a command printed, which must be UTF-8.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// What a command printed on standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as an argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("path")
}

/// JSON lines `{"n": i, "user": "user-<i % users>"}` for each `i`.
pub fn records(n: std::ops::Range<u64>, users: u64) -> String {
    n.map(|i| format!("{{\"n\":{i},\"user\":\"user-{}\"}}\n", i % users))
        .collect()
}

/// Today (UTC), as archives are dated.
pub fn today() -> Date {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    Date::from_unix(secs as i64)
}

/// The Python to run helpers with: TRITON_PYTHON (scripts/test sets it
/// to the project's venv) when it exists, else python3.
pub fn python() -> String {
    std::env::var("TRITON_PYTHON")
        .ok()
        .filter(|p| Path::new(p).exists())
        .unwrap_or_else(|| "python3".into())
}

// ---- Processes ---------------------------------------------------------

/// Sends `sig` (e.g. "-TERM") to the process, which must exist.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// Waits at most `limit` for the process to exit.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Sends SIGTERM; the process must exit within 60 s.
pub fn sigterm(child: &mut Child) -> ExitStatus {
    signal(child, "-TERM");
    exit_within(child, Duration::from_secs(60)).expect("store did not stop within 60 s of SIGTERM")
}

/// Checks every `every` until `done`; fails saying `what` if that takes
/// longer than `within`.
pub fn wait_until(within: Duration, every: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(every);
    }
}

/// Waits until `log` contains `text`.
pub fn wait_for_log(log: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the store's log within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- The local AWS servers ---------------------------------------------

/// A runtime for calls to the local servers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A unique number in this process, for names on the shared servers.
fn next() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A new, empty bucket on the local S3 server: its name and a store of it.
pub fn new_bucket(tag: &str) -> (String, S3Store) {
    triton_tests::local_endpoint("AWS_ENDPOINT_URL_S3");
    let bucket = format!("triton-{tag}-{}-{}", std::process::id(), next());
    let store = runtime().block_on(async {
        let client = triton_s3::client("us-east-1").await;
        client.create_bucket().bucket(&bucket).send().await.unwrap();
        S3Store::new(client, bucket.clone(), S3Options::default())
    });
    (bucket, store)
}

/// One Kinesis JSON call by hand to the local server (kinesalite checks
/// the form of the signature, not its value); returns the status code.
pub fn call(target: &str, body: &str) -> u16 {
    let url = triton_tests::local_endpoint("AWS_ENDPOINT_URL_KINESIS");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).expect("connect to kinesalite");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=triton-local/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {response}"))
}

/// A stream on the local Kinesis server, with a directory of its own
/// holding a config that names it `events`.
pub struct Stream {
    pub dir: Dir,
    pub config: PathBuf,
    pub name: String,
}

/// A fresh stream of `shards` shards.
pub fn stream(tag: &str, shards: u32) -> Stream {
    let name = format!("cli-{tag}-{}-{}", std::process::id(), next());
    let dir = Dir::new(tag);
    let status = call(
        "CreateStream",
        &format!(r#"{{"StreamName":"{name}","ShardCount":{shards}}}"#),
    );
    assert_eq!(status, 200, "CreateStream {name}");
    std::thread::sleep(Duration::from_millis(300));
    let config = dir.write(
        "triton.yaml",
        format!("events:\n  name: {name}\n  partition_key: user\n  region: us-east-1\n"),
    );
    Stream { dir, config, name }
}

impl Stream {
    /// `triton ARGS --stream events`, with this stream's config.
    pub fn command(&self, args: &[&str]) -> TestCommand {
        let mut c = triton();
        c.env("TRITON_CONFIG", &self.config)
            .args(args)
            .args(["--stream", "events"]);
        c
    }

    /// Runs `triton ARGS --stream events`, whatever its exit code.
    pub fn triton(&self, args: &[&str]) -> Output {
        self.command(args).output()
    }

    /// Writes the file `name` in the stream's directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        self.dir.write(name, text)
    }

    /// `triton put` of `lines`, from the file `name`; must succeed.
    pub fn put(&self, name: &str, lines: &str) -> Output {
        let file = self.file(name, lines);
        self.command(&["put", path(&file)]).success()
    }
}

/// A bucket or a directory with a stream config beside it.
pub struct Archive {
    pub dir: Dir,
    pub bucket: String,
    pub store: Box<dyn ArchiveStore>,
}

fn scratch_dir(tag: &str) -> Dir {
    let dir = Dir::new(tag);
    dir.write(
        "triton.yaml",
        "events:\n  name: user-events\n  partition_key: user\n  region: eu-west-1\n",
    );
    dir
}

impl Archive {
    pub fn local(tag: &str) -> Archive {
        let dir = scratch_dir(tag);
        let root = dir.join("archive");
        Archive {
            bucket: root.display().to_string(),
            store: Box::new(LocalStore::new(root)),
            dir,
        }
    }

    pub fn s3(tag: &str) -> Archive {
        // Bucket names take no underscores (test names have them).
        let (bucket, store) = new_bucket(&tag.replace('_', "-"));
        Archive {
            dir: scratch_dir(tag),
            store: Box::new(store),
            bucket: format!("s3://{bucket}"),
        }
    }

    /// Uploads fixture files under the given keys.
    pub fn put(&self, objects: &[(&str, &str)]) {
        runtime().block_on(async {
            for (key, name) in objects {
                self.store
                    .put_file(key, &fixture(name), &PutOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
    }

    /// `triton cat --stream events` with more arguments.
    pub fn cat(&self, args: &[&str]) -> Output {
        let mut all = vec!["cat", "--stream", "events"];
        all.extend_from_slice(args);
        self.triton(&all)
    }

    pub fn triton(&self, args: &[&str]) -> Output {
        triton()
            .env("TRITON_CONFIG", self.dir.join("triton.yaml"))
            .env("TRITON_BUCKET", &self.bucket)
            .args(args)
            .output()
    }
}
