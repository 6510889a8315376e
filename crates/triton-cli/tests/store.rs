//! `triton store` end to end, against the local Kinesis and S3 servers and
//! real PostgreSQL and SQLite: killed with SIGKILL at random moments while
//! records are produced, restarted each time, stopped with SIGTERM; then
//! every produced record must be in the archives.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use triton_core::source::RecordSource;
use triton_core::time::Date;
use triton_s3::{
    list_archives, ArchiveQuery, ArchiveSource, ArchiveStore, PutOptions, ReadOptions, S3Store,
};

use crate::util::{
    call, exit_within, new_bucket, records, runtime, signal, sigterm, stream, today, wait_for_log,
    wait_until, Dir, Stream, TestCommand,
};

const RECORDS: u64 = 50_000;

/// What the tests start from: a stream of `shards` shards, a new bucket of
/// the same tag (its name, and a store to read the archives from), the
/// day the archives start on, and an SQLite checkpoint database in the
/// stream's directory.
fn setup(tag: &str, shards: u32) -> (Stream, String, S3Store, Date, String) {
    let s = stream(tag, shards);
    let (bucket, archive) = new_bucket(tag);
    let db = s.dir.sqlite("checkpoints.db");
    (s, bucket, archive, today(), db)
}

/// Every archived record's `n`, in archive order.
fn archived(store: S3Store, stream: &str, start: Date) -> Vec<u64> {
    archived_except(store, stream, start, &[])
}

/// The same, leaving out the objects at `skip` (not archives of ours).
fn archived_except(store: S3Store, stream: &str, start: Date, skip: &[String]) -> Vec<u64> {
    runtime().block_on(async {
        let store = std::sync::Arc::new(store);
        let query = ArchiveQuery {
            stream: stream.into(),
            start,
            end: today(),
            client: None,
        };
        let mut archives = list_archives(store.clone(), &query).await.unwrap();
        archives.retain(|a| !skip.contains(&a.key.to_string()));
        let mut source = ArchiveSource::new(store, archives, ReadOptions::default());
        let mut ns = Vec::new();
        while let Some(batch) = source.next_batch(10_000).await.unwrap() {
            for r in batch {
                let record = r.record().unwrap();
                let n = record.get("n").and_then(|v| v.as_i64()).unwrap();
                ns.push(n as u64);
            }
        }
        ns
    })
}

/// Puts records `from..to` (`{"n": i, "user": …}`) into the stream.
/// Milliseconds since the epoch of an RFC 3339 time in UTC as triton
/// writes them (`2026-12-03T15:00:00.123Z`).
fn unix_ms(t: &str) -> u64 {
    let num = |r: std::ops::Range<usize>| t[r].parse::<u64>().unwrap();
    let date = Date::new(num(0..4) as i32, num(5..7) as u8, num(8..10) as u8).unwrap();
    let secs = date.to_unix() as u64 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19);
    let frac = t[19..].trim_start_matches('.').trim_end_matches('Z');
    let ms = format!("{frac:0<3}")[..3].parse::<u64>().unwrap();
    secs * 1000 + ms
}

fn produce(s: &Stream, from: u64, to: u64) {
    s.put(&format!("in{from}.jsonl"), &records(from..to, 97));
}

/// How the crash tests put their records.
#[derive(Clone, Copy, PartialEq)]
enum Producing {
    Plain,
    /// Half of each part as KPL aggregates (small ones, so that archives
    /// are sealed between aggregates often), half plain.
    Mixed,
}

fn produce_as(how: Producing, s: &Stream, from: u64, to: u64) {
    if how == Producing::Plain {
        return produce(s, from, to);
    }
    let mid = from + (to - from) / 2;
    let file = s.file(&format!("in{from}.jsonl"), &records(from..mid, 97));
    s.command(&[
        "put",
        "--aggregate",
        "--aggregate-size",
        "4096",
        file.to_str().unwrap(),
    ])
    .success();
    produce(s, mid, to);
}

struct Store<'a> {
    stream: &'a Stream,
    args: Vec<String>,
    log: std::path::PathBuf,
}

/// What the store logs while it waits between an upload and its checkpoint
/// commit (TRITON_TEST_PAUSE_BEFORE_COMMIT).
const PAUSED: &str = "test hook: pausing between the upload and its checkpoint commit";

impl<'a> Store<'a> {
    /// `triton store` of `stream` into `bucket` with checkpoints in `db`,
    /// from the oldest record, sealing every second, spooling in the
    /// stream's directory, logging to `store.log` there.
    fn new(stream: &'a Stream, bucket: &str, db: &str, extra: &[&str]) -> Store<'a> {
        let spool = stream.dir.join("spool");
        let mut args: Vec<String> = [
            "store",
            "--bucket",
            &format!("s3://{bucket}"),
            "--checkpoint-db",
            db,
            "--from",
            "trim-horizon",
            "--max-file-age",
            "1s",
            "--spool-dir",
            spool.to_str().unwrap(),
            // A restarted store takes its leases back at once.
            "--worker-id",
            &format!("{}-store", stream.name),
            "--lease-duration",
            "3s",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        Store {
            stream,
            args,
            log: stream.dir.join("store.log"),
        }
    }

    fn start(&self) -> Child {
        self.start_with(&[])
    }

    fn start_with(&self, env: &[(&str, &str)]) -> Child {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.stream
            .command(&args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `count` lines containing `text`.
    fn wait_for(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.log().matches(text).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {count}th {text:?} in the store's log within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `triton store --bucket BUCKET --checkpoint-db DB --max-file-age 1s
/// EXTRA` of the stream.
fn store_command(s: &Stream, bucket: &str, db: &str, extra: &[&str]) -> TestCommand {
    let base = ["store", "--bucket", bucket, "--checkpoint-db", db];
    s.command(&[&base[..], &["--max-file-age", "1s"], extra].concat())
}

/// Produces RECORDS records in `kills` parts, each while a store runs that
/// is then SIGKILLed (and restarted): every other kill lands between an
/// upload and its checkpoint
/// commit (held open by the test hook), the others at random moments.
/// Returns the archived `n`s and the store's log; `triton audit` of the
/// bucket must exit 0.
fn crash_and_recover(tag: &str, checkpoint_db: &str, kills: usize) -> (Vec<u64>, String) {
    crash_and_recover_as(Producing::Plain, tag, checkpoint_db, kills, RECORDS)
}

fn crash_and_recover_as(
    producing: Producing,
    tag: &str,
    checkpoint_db: &str,
    kills: usize,
    total: u64,
) -> (Vec<u64>, String) {
    let (s, bucket, archive, started, _) = setup(tag, 4);
    let client = format!("crash{}", std::process::id());
    let store = Store::new(&s, &bucket, checkpoint_db, &["--client-name", &client]);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = triton_tests::Rng::new(seed);
    println!("{tag}: seed {seed}");
    let hook = [("TRITON_TEST_PAUSE_BEFORE_COMMIT", "2s")];
    let mut in_window = 0;
    // Each run gets one tenth of the records, produced while it runs, so
    // that each has new records to upload (and to be killed after).
    let parts = kills as u64;
    for k in 0..kills {
        let part = k as u64;
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| {
                produce_as(
                    producing,
                    &s,
                    part * total / parts,
                    (part + 1) * total / parts,
                );
            });
            let how = if k % 2 == 0 {
                // Killed while an uploaded archive waits for its commit.
                let paused = store.log().matches(PAUSED).count();
                let mut child = store.start_with(&hook);
                store.wait_for(PAUSED, paused + 1);
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                in_window += 1;
                "between an upload and its commit".to_string()
            } else {
                let mut child = store.start();
                let wait = Duration::from_millis(500 + rng.below(3000));
                std::thread::sleep(wait);
                child.kill().unwrap();
                child.wait().unwrap();
                format!("after {wait:?}")
            };
            producer.join().unwrap();
            println!("{tag}: killed the store {how} ({} of {kills})", k + 1);
        });
    }
    let mut child = store.start();
    // Let the store catch up and seal (archives are sealed after 1 s).
    std::thread::sleep(Duration::from_secs(6));
    let status = sigterm(&mut child);
    let log = store.log();
    assert!(status.success(), "store exited with {status}\n{log}");
    // Each kill in the window left an uploaded archive that the next start
    // found in the bucket and only checkpointed.
    let confirmed = log
        .matches("the archive is in the store; committing its checkpoints")
        .count();
    println!("{tag}: {in_window} kills between upload and commit; {confirmed} archives found uploaded on restart, {} rebuilt", log.matches("rebuilt the archive from the stream").count());
    assert!(
        confirmed >= in_window,
        "{confirmed} confirmed after {in_window} kills in the window\n{log}"
    );
    // Nothing left in the spool of the finished store.
    let spooled: Vec<_> = std::fs::read_dir(s.dir.join("spool")).unwrap().collect();
    assert!(spooled.is_empty(), "{spooled:?}");
    // The audit finds every shard's ranges joined, without overlaps, up to
    // the checkpoints.
    let bucket = format!("s3://{bucket}");
    let report = audit_clean(
        &s,
        &bucket,
        checkpoint_db,
        started,
        &["--client-name", &client],
    );
    println!("{tag}: audit: {}", report.lines().next().unwrap_or(""));
    let dead = runtime()
        .block_on(archive.list(triton_s3::archiver::DEAD_LETTER_PREFIX))
        .unwrap();
    assert!(dead.is_empty(), "{tag}: dead letters: {dead:?}");
    if producing == Producing::Mixed {
        // Sidecars count user records and the Kinesis records they came in.
        let (mut records, mut kinesis) = (0, 0);
        for o in runtime().block_on(archive.list("")).unwrap() {
            if !o.key.ends_with(triton_s3::archiver::METADATA_SUFFIX) {
                continue;
            }
            let sidecar: serde_json::Value =
                serde_json::from_slice(&object_bytes(&archive, &o.key)).unwrap();
            assert_eq!(sidecar["format_version"], 3);
            for range in sidecar["shards"].as_object().unwrap().values() {
                records += range["record_count"].as_u64().unwrap();
                kinesis += range["kinesis_record_count"].as_u64().unwrap();
            }
        }
        println!("{tag}: sidecars: {records} records in {kinesis} Kinesis records");
        assert!(
            records >= total && kinesis < records * 3 / 4,
            "{records} in {kinesis}"
        );
    }
    (archived(archive, &s.name, started), log)
}

fn check(tag: &str, ns: &[u64], log: &str, produced: u64) {
    println!(
        "{tag}: the stores uploaded {} archives; restarts removed {} spool files of killed stores",
        log.matches("archive uploaded and checkpointed").count(),
        log.matches("removed the spool file").count()
    );
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for &n in ns {
        *counts.entry(n).or_default() += 1;
    }
    let lost: Vec<u64> = (0..produced).filter(|n| !counts.contains_key(n)).collect();
    let duplicates = ns.len() as u64 - counts.len() as u64;
    println!(
        "{tag}: {} records archived, {} distinct, {} lost, {duplicates} duplicates",
        ns.len(),
        counts.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{tag}: {} records lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        counts.keys().all(|&n| n < produced),
        "{tag}: records that were never produced"
    );
    let twice: Vec<u64> = counts
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(&n, _)| n)
        .take(10)
        .collect();
    assert_eq!(duplicates, 0, "{tag}: duplicated records, e.g. {twice:?}");
}

#[test]
fn survives_sigkill_with_postgres_checkpoints() {
    // A password to hide: trust authentication ignores it, so one is added
    // where the test database's URL has none.
    let url = test_postgres();
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (user_info, host) = rest
        .split_once('@')
        .expect("a user in the test database URL");
    let (user, password) = match user_info.split_once(':') {
        Some((user, password)) => (user, password.to_string()),
        None => (user_info, "hidden-test-password".to_string()),
    };
    let url = format!("{scheme}://{user}:{password}@{host}");
    let (ns, log) = crash_and_recover("crashpg", &url, 10);
    check("postgres", &ns, &log, RECORDS);
    assert!(!log.contains(&password), "the database password was logged");
}

#[test]
fn survives_sigkill_with_sqlite_checkpoints() {
    let dir = Dir::new("crash-sqlite");
    let url = dir.sqlite("checkpoints.db");
    let (ns, log) = crash_and_recover("crashlite", &url, 10);
    check("sqlite", &ns, &log, RECORDS);
}

/// Aggregated (KPL) and plain records in one stream, the store SIGKILLed
/// as above: every user record archived exactly once, none a dead letter,
/// the audit clean (archives never split an aggregate, so checkpoints and
/// sidecar ranges stay whole Kinesis records).
#[test]
fn survives_sigkill_with_aggregated_and_plain_records() {
    let dir = Dir::new("crash-kpl");
    let url = dir.sqlite("checkpoints.db");
    let total = 20_000;
    let (ns, log) = crash_and_recover_as(Producing::Mixed, "crashkpl", &url, 4, total);
    check("kpl", &ns, &log, total);
}

/// A loopback TCP proxy that can be switched off: then it refuses new
/// connections and cuts the open ones, as an unreachable S3 would look.
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Frozen: connections stay open and are taken, but nothing passes
    /// either way (a hung S3).
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    /// A proxy to the local S3 server.
    fn in_front_of_s3() -> Proxy {
        let moto = triton_tests::local_endpoint("AWS_ENDPOINT_URL_S3");
        Proxy::start(
            moto.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
        )
    }

    fn start(upstream: String) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            down: Default::default(),
            frozen: Default::default(),
            open: Default::default(),
        };
        let (down, frozen, open) = (proxy.down.clone(), proxy.frozen.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let frozen = frozen.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            while frozen.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    /// The URL to reach the server through the proxy.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            for c in self.open.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[test]
fn waits_out_an_s3_outage_of_30_seconds() {
    let (s, bucket, archive, started, db) = setup("outage", 2);
    let proxy = Proxy::in_front_of_s3();
    let log = s.dir.join("store.log");
    let bucket = format!("s3://{bucket}");
    let start = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        store_command(&s, &bucket, &db, &["--from", "trim-horizon"])
            .env("AWS_ENDPOINT_URL_S3", proxy.endpoint())
            .env("RUST_LOG", "warn,triton=info,triton_s3=info")
            .stderr(log)
            .spawn()
    };
    let mut child = start();
    let archived_count = || archived(archive.clone(), &s.name, started).len();
    produce(&s, 0, 2_000);
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(500),
        "nothing archived before the outage",
        || archived_count() >= 2_000,
    );
    proxy.set_down(true);
    produce(&s, 2_000, 4_000);
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the store exited during the outage"
    );
    // Killed while its data waits for S3: nothing of it may have been
    // checkpointed, so the restarted store reads it again.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = start();
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the store exited during the outage"
    );
    assert_eq!(archived_count(), 2_000, "uploads went through the outage?");
    proxy.set_down(false);
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(500),
        "the store did not recover within 60 s",
        || archived_count() >= 4_000,
    );
    let status = sigterm(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}\n{text}");
    assert!(text.contains("waiting for the archive store"), "{text}");
    check(
        "outage",
        &archived(archive, &s.name, started)[..],
        &text,
        4_000,
    );
}

/// A hung S3 (connections taken, nothing answered) is not waited on in
/// silence: each stalled upload is given up after --s3-stall-timeout with
/// a warning naming the archive, retried, and goes through once S3 answers
/// again.
#[test]
fn a_hung_s3_is_reported_and_retried() {
    let (s, bucket, archive, started, db) = setup("hung", 1);
    let proxy = Proxy::in_front_of_s3();
    let store = Store::new(&s, &bucket, &db, &["--s3-stall-timeout", "2s"]);
    let mut child = store.start_with(&[("AWS_ENDPOINT_URL_S3", &proxy.endpoint())]);
    store.wait_for("store started", 1);
    proxy
        .frozen
        .store(true, std::sync::atomic::Ordering::SeqCst);
    produce(&s, 0, 500);
    store.wait_for("no progress for ", 1);
    let text = store.log();
    assert!(
        text.lines()
            .any(|l| l.contains("no progress for ") && l.contains(".tri")),
        "the warning names no archive: {text}"
    );
    assert_eq!(archived(archive.clone(), &s.name, started).len(), 0);
    proxy
        .frozen
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(500),
        "not archived after S3 came back",
        || archived(archive.clone(), &s.name, started).len() >= 500,
    );
    let status = sigterm(&mut child);
    let text = store.log();
    assert!(status.success(), "{status}\n{text}");
    check("hung", &archived(archive, &s.name, started), &text, 500);
}

/// Sends SIGTERM.
fn term(child: &Child) {
    signal(child, "-TERM");
}

#[test]
fn a_second_signal_or_the_timeout_ends_a_stop_that_cannot_finish() {
    let (s, bucket, _, _, db) = setup("stuck", 1);
    let proxy = Proxy::in_front_of_s3();
    produce(&s, 0, 100);
    let bucket = format!("s3://{bucket}");
    let log = s.dir.join("store.log");
    // Starts a store and waits until an archive is stuck in upload.
    let stuck_store = |extra: &[&str]| {
        let child = store_command(
            &s,
            &bucket,
            &db,
            &[&["--from", "trim-horizon"], extra].concat(),
        )
        .env("AWS_ENDPOINT_URL_S3", proxy.endpoint())
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
        // S3 answers the start-up check (an outage then is waited out
        // before the store starts), then goes away: no upload can finish.
        // The first archive seals a second after the first read, which
        // comes at least a second after the start.
        proxy.set_down(false);
        wait_for_log(&log, "store started");
        proxy.set_down(true);
        wait_for_log(&log, "waiting for the archive store");
        child
    };

    // The graceful stop waits for the upload; a second signal ends it.
    let mut child = stuck_store(&[]);
    term(&child);
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(2)),
        None,
        "stopped without uploading"
    );
    term(&child);
    let status =
        exit_within(&mut child, Duration::from_secs(5)).expect("the second signal did not end it");
    assert_eq!(status.code(), Some(130));

    // --shutdown-timeout ends it too. (Another client: the first left an
    // upload intent, and a stop while the next start finishes it exits 0
    // at once, which is safe: it is finished by the start after.)
    let mut child = stuck_store(&["--shutdown-timeout", "2s", "--client-name", "second"]);
    let signalled = Instant::now();
    term(&child);
    let status =
        exit_within(&mut child, Duration::from_secs(10)).expect("the timeout did not end it");
    assert_eq!(status.code(), Some(1));
    assert!(signalled.elapsed() >= Duration::from_secs(2));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("took longer than --shutdown-timeout"),
        "{text}"
    );
}

#[test]
fn skip_to_latest_ignores_the_checkpoints() {
    let (s, bucket, archive, started, db) = setup("latest", 1);
    let bucket = format!("s3://{bucket}");
    let log = s.dir.join("store.log");
    // Starts a store and waits until it reads.
    let start_store = |extra: &[&str]| {
        let child = store_command(&s, &bucket, &db, extra)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn();
        wait_for_log(&log, "store started");
        child
    };
    // A first run archives 0..100 and checkpoints them.
    produce(&s, 0, 100);
    let mut child = start_store(&["--from", "trim-horizon"]);
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(300),
        "the first run archived nothing",
        || archived(archive.clone(), &s.name, started).len() >= 100,
    );
    assert!(sigterm(&mut child).success());
    // Records 100..200 arrive while no store runs; --skip-to-latest starts
    // after them, although the checkpoints say 100.
    produce(&s, 100, 200);
    let mut child = start_store(&["--skip-to-latest"]);
    std::thread::sleep(Duration::from_secs(1));
    produce(&s, 200, 250);
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(300),
        "the second run archived nothing",
        || archived(archive.clone(), &s.name, started).len() >= 150,
    );
    assert!(sigterm(&mut child).success());
    let mut ns = archived(archive, &s.name, started);
    ns.sort_unstable();
    let expected: Vec<u64> = (0..100).chain(200..250).collect();
    assert_eq!(ns, expected);
}

/// The `n` of every record in one archive object, sorted.
fn object_ns(store: &S3Store, key: &str) -> Option<Vec<u64>> {
    runtime().block_on(async {
        let mut body = match store.get(key, 0).await {
            Ok(body) => body,
            Err(e) if e.is_not_found() => return None,
            Err(e) => panic!("{key}: {e}"),
        };
        let mut bytes = Vec::new();
        while body.reader.read_into(&mut bytes).await.unwrap() > 0 {}
        let mut reader = triton_core::archive::ArchiveReader::new(bytes.as_slice());
        let mut ns = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            ns.push(r.get("n").and_then(|v| v.as_i64()).unwrap() as u64);
        }
        ns.sort_unstable();
        Some(ns)
    })
}

/// The key in the last line of the store's log that contains `text`
/// (`… key="<key>"`).
fn logged_key(log: &str, text: &str) -> String {
    let line = log.lines().rev().find(|l| l.contains(text)).unwrap();
    line.split("key=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// Kills the store while an uploaded archive waits for its commit, deletes
/// that archive behind its back (and, for a machine lost with it, the spool
/// copy), restarts it and waits for `recovered` in its log. Returns the
/// key and its records before the deletion.
fn delete_before_recovery(
    store: &Store,
    archive: &S3Store,
    lose_spool: bool,
    recovered: &str,
) -> (Child, String, Vec<u64>) {
    let paused = store.log().matches(PAUSED).count();
    let mut child = store.start_with(&[("TRITON_TEST_PAUSE_BEFORE_COMMIT", "60s")]);
    store.wait_for(PAUSED, paused + 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let key = logged_key(&store.log(), PAUSED);
    let before = object_ns(archive, &key).expect("the archive was uploaded");
    assert!(!before.is_empty());
    runtime().block_on(archive.delete(&key)).unwrap();
    assert_eq!(object_ns(archive, &key), None);
    if lose_spool {
        let spool = store.stream.dir.join("spool");
        for f in std::fs::read_dir(&spool).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
    }
    let done = store.log().matches(recovered).count();
    let child = store.start();
    store.wait_for(recovered, done + 1);
    assert_eq!(logged_key(&store.log(), recovered), key);
    (child, key, before)
}

#[test]
fn an_archive_deleted_before_recovery_is_rebuilt_under_its_key() {
    let (s, bucket, archive, started, db) = setup("rebuild", 2);
    let store = Store::new(&s, &bucket, &db, &[]);
    // The spool copy the killed store left is uploaded: the same bytes.
    produce(&s, 0, 3_000);
    let (mut child, key, before) = delete_before_recovery(
        &store,
        &archive,
        false,
        "uploaded the archive from the spool file the interrupted store left",
    );
    assert_eq!(object_ns(&archive, &key), Some(before));
    child.kill().unwrap();
    child.wait().unwrap();

    // Without the spool copy, the archive is rebuilt from Kinesis: exactly
    // the recorded ranges, under the same key.
    produce(&s, 3_000, 6_000);
    let (mut child, key, before) = delete_before_recovery(
        &store,
        &archive,
        true,
        "rebuilt the archive from the stream",
    );
    // Records after the recorded ranges are read as usual.
    produce(&s, 6_000, 7_000);
    let uploaded = store
        .log()
        .matches("archive uploaded and checkpointed")
        .count();
    store.wait_for("archive uploaded and checkpointed", uploaded + 1);
    std::thread::sleep(Duration::from_secs(3));
    let status = sigterm(&mut child);
    let log = store.log();
    assert!(status.success(), "{log}");
    let after = object_ns(&archive, &key).expect("rebuilt under the same key");
    assert_eq!(after, before, "the rebuilt archive holds other records");
    println!("rebuilt {key} with the same {} records", after.len());
    let ns = archived(archive, &s.name, started);
    check("rebuild", &ns, &log, 7_000);
}

/// An interrupted upload whose object was replaced by other bytes of the
/// same size: the next start moves the archive to the next key and
/// reports the object once; the start after that has nothing to finish,
/// and audit exits 0 listing the object as foreign.
#[test]
fn a_foreign_object_at_an_interrupted_key_is_reported_once() {
    let (s, bucket, archive, started, db) = setup("foreign", 2);
    let store = Store::new(&s, &bucket, &db, &[]);
    produce(&s, 0, 2_000);
    let mut child = store.start_with(&[("TRITON_TEST_PAUSE_BEFORE_COMMIT", "60s")]);
    store.wait_for(PAUSED, 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let key = logged_key(&store.log(), PAUSED);
    let size = runtime()
        .block_on(archive.head(&key))
        .unwrap()
        .expect("the archive was uploaded")
        .size as usize;
    let overwrite = PutOptions {
        create_only: false,
        ..PutOptions::default()
    };
    runtime()
        .block_on(archive.put_bytes(&key, vec![0x5a; size], &overwrite))
        .unwrap();

    let mut child = store.start();
    store.wait_for("FOREIGN:", 1);
    store.wait_for("store started", 2);
    assert!(sigterm(&mut child).success(), "{}", store.log());
    // Once: the next start finishes nothing.
    let rebuilt = store.log().matches("rebuilt the archive").count()
        + store
            .log()
            .matches("uploaded the archive from the spool")
            .count();
    let mut child = store.start();
    store.wait_for("store started", 3);
    assert!(sigterm(&mut child).success(), "{}", store.log());
    let log = store.log();
    assert_eq!(log.matches("FOREIGN:").count(), 1, "{log}");
    assert_eq!(
        log.matches("rebuilt the archive").count()
            + log.matches("uploaded the archive from the spool").count(),
        rebuilt,
        "recovery ran again: {log}"
    );
    let text = audit_clean(&s, &format!("s3://{bucket}"), &db, started, &[]);
    assert!(text.contains(&format!("FOREIGN {key}")), "{text}");
    assert!(!text.contains("PENDING"), "{text}");
    let ns = archived_except(archive, &s.name, started, std::slice::from_ref(&key));
    check("foreign", &ns, &log, 2_000);
}

/// The whole object at `key`.
fn object_bytes(store: &S3Store, key: &str) -> Vec<u8> {
    runtime().block_on(async {
        let mut body = store.get(key, 0).await.unwrap();
        let mut bytes = Vec::new();
        while body.reader.read_into(&mut bytes).await.unwrap() > 0 {}
        bytes
    })
}

/// A store run over several archives of a 2-shard stream with a split in
/// the middle and dead letters, then one object at a time removed: audit
/// finds each removal by the chain the sidecars carry, names what was
/// removed, and is clean again once it is back.
#[test]
fn audit_finds_every_removed_archive_by_the_chain() {
    let (s, bucket, archive, started, db) = setup("chain", 4);
    let store = Store::new(&s, &bucket, &db, &[]);
    let mut child = store.start();
    store.wait_for("store started", 1);
    let mut produced = 0;
    for round in 0..4 {
        produce(&s, produced, produced + 500);
        produced += 500;
        if round == 1 {
            // Records that are not MessagePack maps: dead letters.
            for i in 0..3 {
                let data = base64_of(format!("not msgpack {i}").as_bytes());
                let body = format!(
                    r#"{{"StreamName":"{}","Data":"{data}","PartitionKey":"bad-{i}"}}"#,
                    s.name
                );
                assert_eq!(call("PutRecord", &body), 200);
            }
        }
        if round == 2 {
            // The middle of the first of the 4 shards' hash key ranges.
            let body = format!(
                r#"{{"StreamName":"{}","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"42535295865117307932921825928971026432"}}"#,
                s.name
            );
            assert_eq!(call("SplitShard", &body), 200);
            std::thread::sleep(Duration::from_secs(1));
        }
        wait_until(
            Duration::from_secs(60),
            Duration::from_millis(300),
            "not archived within 60 s",
            || archived(archive.clone(), &s.name, started).len() as u64 >= produced,
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(sigterm(&mut child).success(), "{}", store.log());
    check(
        "chain",
        &archived(archive.clone(), &s.name, started),
        &store.log(),
        produced,
    );

    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "--bucket", &bucket, "--checkpoint-db", &db];
        if !extra.contains(&"--format") {
            args.extend(["--format", "json"]);
        }
        let date = started.to_string();
        if !extra.contains(&"--start-date") {
            args.extend(["--start-date", &date]);
        }
        args.extend(extra);
        let o = s.triton(&args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (o.status.code(), text, err)
    };
    let (code, text, err) = audit(&[]);
    assert_eq!(code, Some(0), "{text}{err}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shards = report["shards"].as_object().unwrap();
    assert!(
        shards.len() >= 6,
        "the split's children are archived: {shards:?}"
    );
    let keys_of = |shard: &str| -> Vec<String> {
        shards[shard]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["archive"].as_str().unwrap().to_owned())
            .collect()
    };
    let shard1 = keys_of("shardId-000000000001");
    assert!(shard1.len() >= 3, "{shard1:?}");
    let mut all: Vec<String> = shards.keys().flat_map(|s| keys_of(s)).collect();
    all.sort();
    all.dedup();
    let dead: String = runtime()
        .block_on(archive.list("_invalid/"))
        .unwrap()
        .first()
        .map(|o| o.key.clone())
        .expect("a dead-letter archive");
    let dead_of = dead.trim_start_matches("_invalid/").to_owned();

    let overwrite = PutOptions {
        create_only: false,
        ..PutOptions::default()
    };
    // (what is removed, what audit must say).
    let middle = shard1[1].clone();
    let first = all[0].clone();
    let last = shard1.last().unwrap().clone();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a middle archive",
            vec![middle.clone()],
            format!("\"missing_archive\": \"{middle}\""),
        ),
        (
            "a middle archive and its sidecar",
            vec![middle.clone(), format!("{middle}.metadata")],
            format!("\"missing_archive\": \"{middle}\""),
        ),
        (
            "the first archive",
            vec![first.clone()],
            format!("\"missing_archive\": \"{first}\""),
        ),
        (
            "the last archive before the checkpoint",
            vec![last.clone()],
            format!("\"missing_archive\": \"{last}\""),
        ),
        (
            "a dead-letter archive",
            vec![dead.clone()],
            format!("\"dead_letters\": \"{dead}\""),
        ),
        (
            "a sidecar alone",
            vec![format!("{dead_of}.metadata")],
            "\"kind\": \"missing_sidecar\"".to_owned(),
        ),
    ];
    let spool = s.dir.join("repair-spool");
    let spool = spool.to_str().unwrap();
    for (what, removed, says) in cases {
        let kept: Vec<(String, Vec<u8>)> = removed
            .iter()
            .map(|k| (k.clone(), object_bytes(&archive, k)))
            .collect();
        for k in &removed {
            runtime().block_on(archive.delete(k)).unwrap();
        }
        let (code, text, err) = audit(&[]);
        assert_eq!(code, Some(1), "{what}: {text}{err}");
        assert!(text.contains(&says), "{what}: want {says} in {text}");
        let found: serde_json::Value = serde_json::from_str(&text).unwrap();
        println!("audit with {what} removed: {}", found["findings"]);
        let (_, text, _) = audit(&["--format", "text"]);
        println!("{text}");
        // --repair puts back each removed object under its own key, with
        // the same records (an archive's may come in another order across
        // shards, dead letters carry the time they were read again), and
        // audits clean.
        let (code, text, err) = audit(&["--repair", "--spool-dir", spool]);
        assert_eq!(code, Some(0), "{what}, repaired: {text}{err}");
        let repaired: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            repaired["after"]["findings"],
            serde_json::json!([]),
            "{what}"
        );
        assert_eq!(repaired["before"], found, "{what}");
        println!("repair of {what}: {}", repaired["repairs"]);
        for (k, bytes) in kept {
            let now = object_bytes(&archive, &k);
            if k.ends_with(".metadata") {
                let (old, new): (serde_json::Value, serde_json::Value) = (
                    serde_json::from_slice(&bytes).unwrap(),
                    serde_json::from_slice(&now).unwrap(),
                );
                assert!(new["rebuilt"].is_string(), "{what}: {new}");
                for field in ["shards", "size", "sha256", "record_count"] {
                    assert_eq!(old[field], new[field], "{what}: {field} of {k}");
                }
            } else {
                assert_eq!(records_of(&now), records_of(&bytes), "{what}: {k}");
            }
        }
        let (code, text, err) = audit(&[]);
        assert_eq!(code, Some(0), "{what} repaired: {text}{err}");
    }
    // Nothing missing: --repair changes nothing and exits 0.
    let (code, text, err) = audit(&["--repair", "--spool-dir", spool]);
    assert_eq!(code, Some(0), "{text}{err}");

    // Two clients need --client-name; an empty range is not clean.
    let copy = all[0].replace("-store-", "-other-");
    let bytes = object_bytes(&archive, &all[0]);
    runtime()
        .block_on(archive.put_bytes(&copy, bytes, &overwrite))
        .unwrap();
    let (code, _, err) = audit(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--client-name"), "{err}");
    let (code, text, err) = audit(&["--client-name", "store"]);
    assert_eq!(code, Some(0), "{text}{err}");
    let (code, _, err) = audit(&["--start-date", "20000101", "--end-date", "20000101"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nothing to audit"), "{err}");
    let (code, _, err) = audit(&[
        "--start-date",
        "20000101",
        "--end-date",
        "20000101",
        "--allow-empty",
    ]);
    assert_eq!(code, Some(0), "{err}");
}

/// With the default hourly rotation, a split's parent is not left waiting
/// for it: the archive holding its last records is sealed within seconds
/// of the shard's end, its checkpoint committed, and the children are read
/// at once. Every record is archived once.
#[test]
fn a_split_parent_is_sealed_soon_and_its_children_start() {
    let (s, bucket, archive, started, db) = setup("ended", 2);
    let mut store = Store::new(&s, &bucket, &db, &[]);
    let age = store
        .args
        .iter()
        .position(|a| a == "--max-file-age")
        .unwrap();
    store.args[age + 1] = "1h".into();
    let mut child = store.start();
    store.wait_for("store started", 1);
    produce(&s, 0, 300);
    std::thread::sleep(Duration::from_secs(2));
    let body = format!(
        r#"{{"StreamName":"{}","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"85070591730234615865843651857942052864"}}"#,
        s.name
    );
    let split = Instant::now();
    assert_eq!(call("SplitShard", &body), 200);
    // Children start once the parent's last record is checkpointed.
    store.wait_for("shard finished", 1);
    println!(
        "from the split to the parent finished (children reading): {:.1} s",
        split.elapsed().as_secs_f64()
    );
    assert!(split.elapsed() < Duration::from_secs(30), "{}", store.log());
    produce(&s, 300, 600);
    std::thread::sleep(Duration::from_secs(3));
    assert!(sigterm(&mut child).success(), "{}", store.log());
    let ns = archived(archive.clone(), &s.name, started);
    check("ended", &ns, &store.log(), 600);
    let text = audit_clean(&s, &bucket, &db, started, &[]);
    assert!(
        text.contains("shardId-000000000002"),
        "the children are archived: {text}"
    );
}

/// An archive's records, sorted (their order across shards is not kept by
/// a repair), without the time a dead letter was read (`arrival`).
fn records_of(bytes: &[u8]) -> Vec<String> {
    let mut reader = triton_core::archive::ArchiveReader::new(bytes);
    let mut out = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        let kept: Vec<String> = record
            .fields()
            .iter()
            .filter(|(k, _)| *k != "arrival")
            .map(|(k, v)| format!("{k:?}={v:?}"))
            .collect();
        out.push(kept.join(","));
    }
    out.sort();
    out
}

fn base64_of(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- A fleet of workers ----------------------------------------------

impl<'a> Store<'a> {
    /// Sets `flag` to `value` (replacing the default).
    fn set(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_owned(),
            None => self.args.extend([flag.to_owned(), value.to_owned()]),
        }
    }

    /// A fleet worker `id` logging to `<id>.log`.
    fn worker(stream: &'a Stream, bucket: &str, db: &str, id: &str) -> Store<'a> {
        let mut w = Store::new(stream, bucket, db, &[]);
        w.set("--worker-id", id);
        w.log = stream.dir.join(format!("{id}.log"));
        w
    }
}

/// `triton leases --format json`: shard -> owner.
fn owners(s: &Stream, db: &str) -> std::collections::BTreeMap<String, Option<String>> {
    try_owners(s, db).unwrap_or_else(|e| panic!("{e}"))
}

fn try_owners(
    s: &Stream,
    db: &str,
) -> Result<std::collections::BTreeMap<String, Option<String>>, String> {
    let o = s.triton(&["leases", "--checkpoint-db", db, "--format", "json"]);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    Ok(doc["leases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "active" && l["expired"] == false)
        .map(|l| {
            (
                l["shard"].as_str().unwrap().to_owned(),
                l["owner"].as_str().map(str::to_owned),
            )
        })
        .collect())
}

/// Waits until the shards are held by at least `workers` distinct workers
/// (each shard by one: the table has one owner column); returns how long.
fn wait_for_spread(s: &Stream, db: &str, workers: usize, within: Duration) -> Duration {
    poll_until(
        within,
        &format!("the leases spread over {workers} workers"),
        || {
            // (Before the first worker made the tables, there are none.)
            let o = try_owners(s, db).unwrap_or_default();
            let distinct: std::collections::BTreeSet<&String> = o.values().flatten().collect();
            let spread =
                distinct.len() >= workers && !o.is_empty() && o.values().all(Option::is_some);
            (spread, format!("{o:?}"))
        },
    )
}

/// Checks every 200 ms until `check` says done (and what it saw); fails
/// after `within`, saying `what` did not happen and what was seen last.
/// Returns how long it took.
fn poll_until(within: Duration, what: &str, mut check: impl FnMut() -> (bool, String)) -> Duration {
    let started = Instant::now();
    loop {
        let (done, seen) = check();
        if done {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not within {within:?}: {what}; last seen {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The test PostgreSQL server (TRITON_TEST_POSTGRES, set by scripts/test).
fn test_postgres() -> String {
    std::env::var("TRITON_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) -> String {
    let o = Command::new("psql")
        .args([url, "-XAtqc", sql])
        .output()
        .expect("psql");
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A throw-away database on the test server, so that killing its
/// connections touches no other test.
fn pg_database(tag: &str) -> (String, String) {
    let admin = test_postgres();
    let name = format!("triton_{tag}_{}", std::process::id());
    psql(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    psql(&admin, &format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    (admin.clone(), format!("{base}/{name}"))
}

/// Produces `chunks` chunks of `per` records, one every `every`.
fn produce_steadily(s: &Stream, chunks: u64, per: u64, every: Duration) {
    for c in 0..chunks {
        produce(s, c * per, (c + 1) * per);
        std::thread::sleep(every);
    }
}

/// Waits until the archives hold every one of `produced` records.
fn wait_until_archived(store: &S3Store, s: &Stream, started: Date, produced: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ns = archived(store.clone(), &s.name, started);
        let distinct: std::collections::HashSet<u64> = ns.iter().copied().collect();
        if distinct.len() as u64 >= produced {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {produced} records archived within 90 s",
            distinct.len()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Per partition key (user = n % 97), records come in the order they were
/// produced, across handoffs and splits.
fn check_order(ns: &[u64]) {
    let mut last: HashMap<u64, u64> = HashMap::new();
    for &n in ns {
        if let Some(&before) = last.get(&(n % 97)) {
            assert!(
                n > before,
                "user-{}: record {n} archived after {before}",
                n % 97
            );
        }
        last.insert(n % 97, n);
    }
}

/// `triton audit EXTRA` of the archives in `bucket` since `started`,
/// against the checkpoints in `db`, which must exit with 0 (clean);
/// returns its report.
fn audit_clean(s: &Stream, bucket: &str, db: &str, started: Date, extra: &[&str]) -> String {
    let date = started.to_string();
    let base = ["audit", "--bucket", bucket, "--checkpoint-db", db];
    let o = s
        .command(&[&base[..], &["--start-date", &date], extra].concat())
        .success();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Three workers on an 8-shard stream in PostgreSQL, records produced the
/// whole time, through every routine fault of a fleet: a worker paused
/// (SIGSTOP) for three lease durations between an upload and its commit,
/// every database connection killed (pg_terminate_backend) five times, a
/// worker SIGKILLed and restarted under its id, one SIGKILLed and replaced
/// by a new id, a split while leases move. Then: 0 lost, 0 duplicated,
/// per-key order kept, audit clean.
#[test]
fn a_fleet_of_three_loses_and_duplicates_nothing_through_faults() {
    let tag = "fleet";
    let (s, bucket, archive, started, _) = setup(tag, 8);
    let (admin, db) = pg_database(tag);
    let ids = ["w1", "w2", "w3"];
    let workers: Vec<Store> = ids
        .iter()
        .map(|id| Store::worker(&s, &bucket, &db, id))
        .collect();
    let pause = [("TRITON_TEST_PAUSE_BEFORE_COMMIT", "1s")];
    let mut children: Vec<Child> = vec![
        workers[0].start_with(&pause),
        workers[1].start(),
        workers[2].start(),
    ];
    let spread = wait_for_spread(&s, &db, 2, Duration::from_secs(10));
    println!("{tag}: three workers started together hold shards on two or more within {spread:?}");
    const CHUNKS: u64 = 30;
    const PER: u64 = 200;
    std::thread::scope(|scope| {
        let producer =
            scope.spawn(|| produce_steadily(&s, CHUNKS, PER, Duration::from_millis(400)));
        // A zombie: paused after an upload, before its commit, for three
        // lease durations; the others take its shards and finish its
        // upload, and its late commit is refused by the fence.
        let paused = workers[0].log().matches(PAUSED).count();
        workers[0].wait_for(PAUSED, paused + 1);
        signal(&children[0], "-STOP");
        std::thread::sleep(Duration::from_secs(9));
        signal(&children[0], "-CONT");
        workers[0].wait_for("a lease was lost", 1);
        println!("{tag}: the paused worker found its leases lost and committed nothing");
        // Every connection to the database killed, again and again.
        let dbname = db.rsplit('/').next().unwrap();
        for _ in 0..5 {
            psql(
                &admin,
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
                ),
            );
            std::thread::sleep(Duration::from_millis(700));
        }
        // SIGKILL, restarted under the same id: takes its leases back.
        children[1].kill().unwrap();
        children[1].wait().unwrap();
        children[1] = workers[1].start();
        // A split while leases move.
        let body = format!(
            r#"{{"StreamName":"{}","ShardToSplit":"shardId-000000000003","NewStartingHashKey":"150000000000000000000000000000000000000"}}"#,
            s.name
        );
        assert_eq!(call("SplitShard", &body), 200);
        // SIGKILL, replaced by a worker of another id: the dead one's
        // leases expire and are taken.
        std::thread::sleep(Duration::from_secs(2));
        children[2].kill().unwrap();
        children[2].wait().unwrap();
        let mut fresh = Store::worker(&s, &bucket, &db, "w4");
        fresh.log = s.dir.join("w4.log");
        children[2] = fresh.start();
        producer.join().unwrap();
        let produced = CHUNKS * PER;
        wait_until_archived(&archive, &s, started, produced);
        // The producer may be done before w3 dies, so that its records are
        // all archived already: the takeover of its leases is waited for.
        let taken = poll_until(
            Duration::from_secs(30),
            "the killed worker's leases taken over",
            || {
                let o = try_owners(&s, &db).unwrap_or_default();
                let w3 = o.values().flatten().any(|w| w == "w3");
                (!o.is_empty() && !w3, format!("{o:?}"))
            },
        );
        println!("{tag}: the killed worker's leases were taken over within {taken:?}");
        for child in &mut children {
            assert!(sigterm(child).success());
        }
        let all_logs: String = ids
            .iter()
            .map(|id| std::fs::read_to_string(s.dir.join(format!("{id}.log"))).unwrap_or_default())
            .chain([fresh.log()])
            .collect();
        let ns = archived(archive.clone(), &s.name, started);
        check(tag, &ns, &all_logs, produced);
        check_order(&ns);
        println!(
            "{tag}: leases taken {} times, lost {} times, fenced writes refused {} times",
            all_logs.matches("took the lease").count(),
            all_logs.matches("a lease was lost").count(),
            all_logs.matches("lease lost:").count(),
        );
    });
    audit_clean(&s, &bucket, &db, started, &[]);
    // Once everyone stopped, nothing is held.
    assert!(owners(&s, &db).values().all(Option::is_none));
    psql(
        &admin,
        &format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            db.rsplit('/').next().unwrap()
        ),
    );
}

/// Three processes on one host sharing an SQLite file: one SIGKILLed and
/// restarted, one stopped and started again (a rolling restart). 0 lost,
/// 0 duplicated.
#[test]
fn three_workers_share_an_sqlite_database() {
    let tag = "fleetlite";
    let (s, bucket, archive, started, db) = setup(tag, 4);
    let workers: Vec<Store> = ["a", "b", "c"]
        .iter()
        .map(|id| Store::worker(&s, &bucket, &db, id))
        .collect();
    let mut children: Vec<Child> = workers.iter().map(Store::start).collect();
    let spread = wait_for_spread(&s, &db, 2, Duration::from_secs(10));
    println!("{tag}: spread over two or more workers within {spread:?}");
    const CHUNKS: u64 = 15;
    const PER: u64 = 200;
    std::thread::scope(|scope| {
        let producer =
            scope.spawn(|| produce_steadily(&s, CHUNKS, PER, Duration::from_millis(400)));
        std::thread::sleep(Duration::from_secs(2));
        children[0].kill().unwrap();
        children[0].wait().unwrap();
        children[0] = workers[0].start();
        std::thread::sleep(Duration::from_secs(2));
        assert!(sigterm(&mut children[1]).success());
        children[1] = workers[1].start();
        producer.join().unwrap();
        wait_until_archived(&archive, &s, started, CHUNKS * PER);
        for child in &mut children {
            assert!(sigterm(child).success());
        }
    });
    let logs: String = workers.iter().map(Store::log).collect();
    let ns = archived(archive.clone(), &s.name, started);
    check(tag, &ns, &logs, CHUNKS * PER);
    check_order(&ns);
    audit_clean(&s, &bucket, &db, started, &[]);
}

/// A PostgreSQL cluster of the test's own (its data directory and port),
/// so that restarting it touches no other test. Stopped when dropped.
struct PrivatePostgres {
    dir: Dir,
    port: u16,
}

impl PrivatePostgres {
    fn as_postgres(args: &[&str]) -> Command {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    }

    /// A server program: beside pg_config's, else in Debian's versioned
    /// directory (initdb and pg_ctl are not on its PATH), else on PATH.
    fn bin(name: &str) -> String {
        if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if o.status.success() && std::path::Path::new(&dir).join(name).exists() {
                return format!("{dir}/{name}");
            }
        }
        let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path().join("bin").join(name))
                    .collect()
            })
            .unwrap_or_default();
        versions.retain(|p| p.exists());
        versions.sort_by_key(|p| {
            p.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
        });
        match versions.last() {
            Some(p) => p.display().to_string(),
            None => name.to_owned(),
        }
    }

    fn run(args: &[&str]) {
        let o = PrivatePostgres::as_postgres(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn start(tag: &str) -> PrivatePostgres {
        let dir = Dir::new(&format!("pg-{tag}"));
        let _ = Command::new("chown")
            .args(["postgres", dir.path().to_str().unwrap()])
            .status();
        let port = 20_000 + (std::process::id() % 20_000) as u16;
        let data = dir.join("data");
        PrivatePostgres::run(&[
            &PrivatePostgres::bin("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
        ]);
        let pg = PrivatePostgres { dir, port };
        pg.ctl("start");
        pg
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.join("server.log");
        PrivatePostgres::run(&[
            &PrivatePostgres::bin("pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            action,
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = PrivatePostgres::as_postgres(&[
            &PrivatePostgres::bin("pg_ctl"),
            "-D",
            self.dir.join("data").to_str().unwrap_or(""),
            "-m",
            "immediate",
            "stop",
        ])
        .output();
        // The directory goes with `dir`, after the server stopped.
    }
}

/// How many active leases each worker holds.
fn held_counts(s: &Stream, db: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for owner in try_owners(s, db)
        .unwrap_or_default()
        .into_values()
        .flatten()
    {
        *counts.entry(owner).or_default() += 1;
    }
    counts
}

/// A rolling deploy 1 -> 3 -> 2 workers while the database restarts and
/// two shards merge, then 10 workers starting at the same moment. Then: 0
/// lost, 0 duplicated, per-key order kept, audit clean; and how long the
/// spread took to converge each time.
#[test]
fn a_rolling_deploy_a_database_restart_a_merge_and_ten_workers_at_once() {
    let tag = "deploy";
    let pg = PrivatePostgres::start(tag);
    let db = pg.url();
    let (s, bucket, archive, started, _) = setup(tag, 4);
    let names: Vec<String> = (1..=10).map(|i| format!("d{i}")).collect();
    let workers: Vec<Store> = names
        .iter()
        .map(|id| Store::worker(&s, &bucket, &db, id))
        .collect();
    let mut running: Vec<(usize, Child)> = vec![(0, workers[0].start())];
    wait_for_spread(&s, &db, 1, Duration::from_secs(10));
    const CHUNKS: u64 = 30;
    const PER: u64 = 150;
    std::thread::scope(|scope| {
        let producer =
            scope.spawn(|| produce_steadily(&s, CHUNKS, PER, Duration::from_millis(400)));
        // 1 -> 3: the first worker hands leases over, one a cycle.
        running.push((1, workers[1].start()));
        running.push((2, workers[2].start()));
        let rolled = poll_until(
            Duration::from_secs(30),
            "an even spread over 3 workers",
            || {
                let counts = held_counts(&s, &db);
                let even = counts.len() == 3 && counts.values().all(|&n| n <= 2);
                (even, format!("{counts:?}"))
            },
        );
        println!(
            "{tag}: 1 -> 3 workers: an even spread within {:.1} s",
            rolled.as_secs_f64()
        );
        // The database restarts under the fleet.
        pg.ctl("restart");
        println!("{tag}: restarted the database");
        // Two adjacent shards merge while leases move.
        let body = format!(
            r#"{{"StreamName":"{}","ShardToMerge":"shardId-000000000000","AdjacentShardToMerge":"shardId-000000000001"}}"#,
            s.name
        );
        assert_eq!(call("MergeShards", &body), 200);
        // 3 -> 2.
        let (_, mut first) = running.remove(0);
        assert!(sigterm(&mut first).success(), "{}", workers[0].log());
        producer.join().unwrap();
        // Ten at once: the two running and eight more.
        for (i, w) in workers.iter().enumerate().skip(3) {
            running.push((i, w.start()));
        }
        let restarted = workers[0].start();
        running.push((0, restarted));
        let burst = poll_until(
            Duration::from_secs(30),
            "10 workers: one lease each",
            || {
                let counts = held_counts(&s, &db);
                let active = try_owners(&s, &db).unwrap_or_default().len();
                let spread =
                    active > 0 && counts.values().all(|&n| n == 1) && counts.len() == active;
                (spread, format!("{counts:?}"))
            },
        );
        println!(
            "{tag}: 10 workers: one lease each within {:.1} s",
            burst.as_secs_f64()
        );
        wait_until_archived(&archive, &s, started, CHUNKS * PER);
        for (i, child) in &mut running {
            assert!(sigterm(child).success(), "{}", workers[*i].log());
        }
    });
    let logs: String = workers.iter().map(Store::log).collect();
    let ns = archived(archive.clone(), &s.name, started);
    check(tag, &ns, &logs, CHUNKS * PER);
    check_order(&ns);
    audit_clean(&s, &bucket, &db, started, &[]);
}

/// `triton replay`: a store archives a stream across a split, stops; the
/// shards are merged and more is produced; a replay from the second
/// archive's time prints every record of the archives from that one on,
/// then exactly the records only the stream holds, each once, in order per
/// user, and ends at the tip; with --follow it goes on with new records
/// until SIGTERM (exit 0).
#[test]
fn replay_hands_off_from_the_archives_to_the_stream() {
    let (s, bucket, archive, started, db) = setup("replay", 2);
    let store = Store::new(&s, &bucket, &db, &[]);
    let mut child = store.start();
    store.wait_for("store started", 1);
    let archived_all = |produced: u64| {
        wait_until(
            Duration::from_secs(60),
            Duration::from_millis(300),
            "not archived within 60 s",
            || archived(archive.clone(), &s.name, started).len() as u64 >= produced,
        );
        // The checkpoint and the sidecar follow the upload.
        std::thread::sleep(Duration::from_millis(1500));
    };
    produce(&s, 0, 300);
    archived_all(300);
    let split = format!(
        r#"{{"StreamName":"{}","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"85070591730234615865843651857942052864"}}"#,
        s.name
    );
    assert_eq!(call("SplitShard", &split), 200);
    std::thread::sleep(Duration::from_secs(1));
    produce(&s, 300, 600);
    archived_all(600);
    assert!(sigterm(&mut child).success(), "{}", store.log());

    // The split's children merge back; records only the stream holds.
    let merge = format!(
        r#"{{"StreamName":"{}","ShardToMerge":"shardId-000000000002","AdjacentShardToMerge":"shardId-000000000003"}}"#,
        s.name
    );
    assert_eq!(call("MergeShards", &merge), 200);
    std::thread::sleep(Duration::from_secs(1));
    produce(&s, 600, 800);

    let keys = runtime().block_on(async {
        let query = ArchiveQuery {
            stream: s.name.clone(),
            start: started,
            end: today(),
            client: None,
        };
        list_archives(std::sync::Arc::new(archive.clone()), &query)
            .await
            .unwrap()
    });
    assert!(keys.len() >= 2, "{keys:?}");
    let from = keys[1].key.timestamp();
    // What the archives from the second on hold.
    let expected_archived: Vec<u64> = runtime().block_on(async {
        let store = std::sync::Arc::new(archive.clone());
        let mut source = ArchiveSource::new(store, keys[1..].to_vec(), ReadOptions::default());
        let mut ns = Vec::new();
        while let Some(batch) = source.next_batch(10_000).await.unwrap() {
            for r in batch {
                ns.push(
                    r.deserialize::<serde_json::Value>().unwrap()["n"]
                        .as_u64()
                        .unwrap(),
                );
            }
        }
        ns
    });
    let ns_of = |out: &str| -> Vec<u64> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };

    let from_arg = from.to_string();
    let bucket_url = format!("s3://{bucket}");
    // `triton replay` of the bucket, polling every 200 ms, and `extra`.
    let replay = |extra: &[&str]| {
        let args = [
            &[
                "replay",
                "--bucket",
                &bucket_url,
                "--poll-interval",
                "200ms",
            ][..],
            extra,
        ]
        .concat();
        s.command(&args)
    };
    let o = replay(&["--from", &from_arg])
        .env("RUST_LOG", "info")
        .output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for line in String::from_utf8_lossy(&o.stderr).lines() {
        if line.contains("hand-off") {
            println!("replay: {line}");
        }
    }
    let ns = ns_of(&String::from_utf8_lossy(&o.stdout));
    let (archived_part, live_part) = ns.split_at(expected_archived.len());
    assert_eq!(
        archived_part,
        &expected_archived[..],
        "the archives first, as stored"
    );
    let mut live: Vec<u64> = live_part.to_vec();
    live.sort_unstable();
    assert_eq!(
        live,
        (600..800).collect::<Vec<_>>(),
        "then exactly what only the stream holds"
    );
    check_order(&ns);
    println!(
        "replay: {} records from {} archives, then {} live",
        archived_part.len(),
        keys.len() - 1,
        live_part.len()
    );

    // An end after everything produced so far (records after it arrive
    // more than a second later).
    let to_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    std::thread::sleep(Duration::from_millis(2100));

    // --with-meta: archived records name their archive, live ones their
    // shard, sequence number, arrival time and partition key.
    let o = replay(&["--from", &from_arg, "--with-meta"]).output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let enveloped: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(enveloped.len(), ns.len());
    for (i, v) in enveloped.iter().enumerate() {
        let archived = i < expected_archived.len();
        assert_eq!(v.get("archive").is_some(), archived, "{v}");
        assert_eq!(v.get("index").is_some(), archived, "{v}");
        assert_eq!(v.get("shard").is_some(), !archived, "{v}");
        assert_eq!(v.get("arrival").is_some(), !archived, "{v}");
        if !archived {
            assert_eq!(v["partition_key"], v["record"]["user"], "{v}");
        }
    }
    let mut live_per_shard = std::collections::BTreeMap::<String, u64>::new();
    for v in &enveloped[expected_archived.len()..] {
        *live_per_shard
            .entry(v["shard"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    println!("replay: live records per shard {live_per_shard:?}");
    let first: Vec<u64> = enveloped
        .iter()
        .take(expected_archived.len())
        .map(|v| v["record"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(first, expected_archived);

    // Following: the same, then records produced while it runs.
    let out = s.dir.join("follow.jsonl");
    let mut follow = replay(&["--from", &from_arg, "--follow"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn();
    produce(&s, 800, 850);
    let total = ns.len() + 50;
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "the followed records within 30 s",
        || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .count()
                >= total
        },
    );
    assert!(sigterm(&mut follow).success());
    let followed = ns_of(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(followed.len(), total);
    // Shards interleave differently from run to run; each one's order holds.
    let (archived_again, live_again) = followed.split_at(expected_archived.len());
    assert_eq!(archived_again, &expected_archived[..]);
    let mut live: Vec<u64> = live_again.to_vec();
    live.sort_unstable();
    assert_eq!(live, (600..850).collect::<Vec<_>>());
    check_order(&followed);

    // --to: the same replay ends there, on the live stream...
    let bounded = |to: &str| {
        let o = replay(&["--from", &from_arg, "--to", to]).output();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ns_of(&String::from_utf8_lossy(&o.stdout))
    };
    let mut until = bounded(&to_secs.to_string());
    until[expected_archived.len()..].sort_unstable();
    let mut want = ns.clone();
    want[expected_archived.len()..].sort_unstable();
    assert_eq!(until, want, "--to leaves out what arrived after it");
    // ...or in the archives: only those opened at or before it are read.
    let first_archive: Vec<u64> = runtime().block_on(async {
        let store = std::sync::Arc::new(archive.clone());
        let mut source = ArchiveSource::new(store, keys[1..2].to_vec(), ReadOptions::default());
        let mut ns = Vec::new();
        while let Some(batch) = source.next_batch(10_000).await.unwrap() {
            ns.extend(batch.iter().map(|r| {
                r.deserialize::<serde_json::Value>().unwrap()["n"]
                    .as_u64()
                    .unwrap()
            }));
        }
        ns
    });
    // Then, from the stream, what arrived by the end but was archived
    // later (the store reads a little behind): by the arrival times the
    // stream gives.
    let o = s
        .command(&[
            "tail",
            "--from",
            "trim-horizon",
            "--with-meta",
            "--idle-timeout",
            "3s",
            "--poll-interval",
            "200ms",
        ])
        .output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let to_ms = from * 1000;
    let arrived_by_end: std::collections::HashSet<u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| unix_ms(v["arrival"].as_str().unwrap()) <= to_ms)
        .map(|v| v["record"]["n"].as_u64().unwrap())
        .collect();
    let inside = bounded(&from_arg);
    assert_eq!(
        inside[..first_archive.len()],
        first_archive[..],
        "--to inside the archives: the archive open then"
    );
    let mut late: Vec<u64> = inside[first_archive.len()..].to_vec();
    late.sort_unstable();
    let mut want: Vec<u64> = arrived_by_end
        .iter()
        .copied()
        .filter(|n| !first_archive.contains(n) && expected_archived.contains(n))
        .collect();
    want.sort_unstable();
    assert_eq!(
        late, want,
        "then what arrived by the end and was archived later"
    );

    // Resumable: stopped inside the archives, then past the hand-off, then
    // while following; together exactly the records of one replay.
    let replay_db = format!("sqlite://{}", s.dir.join("replay.db").display());
    let resumable = |extra: &[&str]| {
        let consumer = ["--consumer", "rebuild", "--checkpoint-db", &replay_db];
        replay(&[&consumer[..], extra].concat())
    };
    let run = |extra: &[&str]| {
        let o = resumable(extra).output();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ns_of(&String::from_utf8_lossy(&o.stdout))
    };
    let in_archives = (expected_archived.len() / 2).max(1);
    let first = run(&["--from", &from_arg, "-n", &in_archives.to_string()]);
    assert_eq!(
        first,
        expected_archived[..in_archives],
        "stopped in the archives"
    );
    let past_handoff = expected_archived.len() - in_archives + 100;
    let second = run(&["-n", &past_handoff.to_string()]);
    assert_eq!(second.len(), past_handoff, "went on past the hand-off");
    let out = s.dir.join("resumed.jsonl");
    let mut third = resumable(&["--follow"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn();
    produce(&s, 850, 900);
    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "the resumed replay's live records within 30 s",
        || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .count()
                >= 200
        },
    );
    assert!(sigterm(&mut third).success());
    let third = ns_of(&std::fs::read_to_string(&out).unwrap());
    // Caught up: nothing is left to print.
    assert!(run(&[]).is_empty(), "records printed again after the tip");
    let all: Vec<u64> = [first, second, third].concat();
    let (archived_resumed, live_resumed) = all.split_at(expected_archived.len());
    assert_eq!(
        archived_resumed,
        &expected_archived[..],
        "the archives once, in order"
    );
    let mut live: Vec<u64> = live_resumed.to_vec();
    live.sort_unstable();
    assert_eq!(live, (600..900).collect::<Vec<_>>(), "then the stream once");
    check_order(&all);
    // Archives without sidecars (as go-triton writes them) are handed off
    // from the checkpoints of the store that wrote them.
    runtime().block_on(async {
        for a in &keys {
            archive
                .delete(&format!("{}.metadata", a.key))
                .await
                .unwrap();
        }
    });
    let o = replay(&[
        "--from",
        &from_arg,
        "--checkpoint-db",
        &db,
        "--client-name",
        "store",
    ])
    .output();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from_checkpoints = ns_of(&String::from_utf8_lossy(&o.stdout));
    let (archived_part, live_part) = from_checkpoints.split_at(expected_archived.len());
    assert_eq!(archived_part, &expected_archived[..]);
    let mut live: Vec<u64> = live_part.to_vec();
    live.sort_unstable();
    assert_eq!(
        live,
        (600..900).collect::<Vec<_>>(),
        "handed off at the checkpoints"
    );
    check_order(&from_checkpoints);

    println!(
        "resumable replay: {} + {} + {} records over three runs",
        in_archives,
        past_handoff,
        all.len() - in_archives - past_handoff
    );
}
