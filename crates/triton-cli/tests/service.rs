//! `triton store` as a service: start-up checks that fail fast with one
//! line, `--dry-run`, `/healthz`, `/readyz` and `/metrics` (parsed by the
//! Python Prometheus client, an independent parser), configuration from the
//! environment alone, and the error lines a newcomer meets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    exit_within, python, records, runtime, stderr, stream, triton, wait_until, Stream, TestCommand,
};

/// A new, empty bucket on the local S3 server.
fn new_bucket(tag: &str) -> String {
    crate::util::new_bucket(tag).0
}

/// Every key in the bucket, whatever its prefix.
fn all_keys(bucket: &str) -> Vec<String> {
    runtime().block_on(async {
        let client = triton_s3::client("us-east-1").await;
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn wait_for_status(port: u16, path: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = get(port, path);
        if got.as_ref().map(|g| g.0) == Some(want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} did not answer {want} within {within:?}; last: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command`, which must end within `limit`.
fn output_within(command: &mut TestCommand, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}: {}", stderr(&out));
    (out, took)
}

/// The store's start-up failure: exit code 1, within a few seconds, and
/// only its error line on standard error (after at most two info lines).
fn fails_to_start(s: &Stream, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = s.command(&[&["store"], args].concat());
    command
        .envs(env.iter().copied())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let (out, _) = output_within(&mut command, Duration::from_secs(15));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let (last, before) = lines.split_last().expect("an error line");
    assert!(last.starts_with("triton: "), "{err}");
    assert!(
        before.len() <= 2,
        "more than two lines before the error:\n{err}"
    );
    assert!(before.iter().all(|l| l.contains(" INFO ")), "{err}");
    last.to_string()
}

#[test]
fn start_up_failures_are_one_line_and_exit_1() {
    let s = stream("startup", 1);
    let db = s.dir.sqlite("c.db");
    let bucket = new_bucket("startup");
    let base = ["--checkpoint-db", &db, "--bucket"];

    let line = fails_to_start(&s, &[&base[..], &["no-such-bucket-17"]].concat(), &[]);
    assert_eq!(
        line,
        "triton: the bucket s3://no-such-bucket-17 does not exist (create it, or check --bucket and --bucket-region)"
    );

    // The real name, without a config file.
    let mut missing_stream = triton();
    missing_stream
        .args(["store", "--checkpoint-db", &db, "--bucket", &bucket])
        .args([
            "--stream-name",
            "no-such-stream-17",
            "--region",
            "us-east-1",
        ])
        .env("TRITON_CONFIG", "/nonexistent/triton.yaml");
    let (out, _) = output_within(&mut missing_stream, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().last(),
        Some("triton: the Kinesis stream no-such-stream-17 does not exist in us-east-1 (check the stream name and --region)")
    );

    let line = fails_to_start(
        &s,
        &[
            &base[..],
            &[&bucket],
            &["--endpoint-url", "htp://127.0.0.1:1"],
        ]
        .concat(),
        &[],
    );
    assert_eq!(
        line,
        "triton: --endpoint-url \"htp://127.0.0.1:1\" is not an http:// or https:// URL"
    );

    let line = fails_to_start(
        &s,
        &["--checkpoint-db", "mysql://x", "--bucket", &bucket],
        &[],
    );
    assert!(line.contains("mysql://x"), "{line}");

    // No credentials anywhere: empty profile files, none in the environment.
    let empty = s.file("empty-aws-config", "");
    let no_profiles = empty.to_str().unwrap();
    let line = fails_to_start(
        &s,
        &[&base[..], &[&bucket]].concat(),
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_CONFIG_FILE", no_profiles),
            ("AWS_SHARED_CREDENTIALS_FILE", no_profiles),
        ],
    );
    assert!(line.len() < 200 + "triton: ".len(), "{line}");
    assert_eq!(
        line,
        "triton: no AWS credentials found (tried the environment, profiles, web identity, ECS and instance metadata): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use --profile"
    );
}

#[test]
fn a_dry_run_checks_everything_and_leaves_nothing() {
    let s = stream("dryrun", 2);
    let db_path = s.dir.join("not-yet.db");
    let db = s.dir.sqlite("not-yet.db");
    let bucket = new_bucket("dryrun");
    let mut command = s.command(&[
        "store",
        "--checkpoint-db",
        &db,
        "--bucket",
        &bucket,
        "--dry-run",
    ]);
    let (out, took) = output_within(&mut command, Duration::from_secs(15));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("store can start"), "{}", stderr(&out));
    // A new SQLite file is fine: the store creates it and its tables.
    assert!(db_path.exists());
    assert_eq!(
        all_keys(&bucket),
        Vec::<String>::new(),
        "the probe was left"
    );
    // Nobody joined the fleet or took a lease.
    let leases = s.triton(&["leases", "--checkpoint-db", &db, "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&leases.stdout).unwrap();
    assert_eq!(doc["leases"], serde_json::json!([]), "{doc}");
    assert_eq!(doc["workers"], serde_json::json!([]), "{doc}");
    // A directory that does not exist yet is created, probed, left empty.
    let dir = s.dir.join("archive-dir");
    let mut command = s.command(&[
        "store",
        "--checkpoint-db",
        &db,
        "--bucket",
        dir.to_str().unwrap(),
        "--dry-run",
    ]);
    let (out, _) = output_within(&mut command, Duration::from_secs(15));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    eprintln!("dry run took {took:?}");
}

fn produce(s: &Stream, n: u64) {
    s.put("in.jsonl", &records(0..n, 7));
}

fn start_store(s: &Stream, args: &[&str], log: &Path) -> Child {
    s.command(&[&["store"], args].concat())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
}

/// SIGTERM, and SIGKILL if it has not ended 30 s later.
fn stop(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if exit_within(child, Duration::from_secs(30)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The archives (`.tri`) in a local bucket directory.
fn archives_in(dir: &Path) -> usize {
    let Ok(days) = std::fs::read_dir(dir) else {
        return 0;
    };
    days.flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("20"))
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".tri"))
        .count()
}

#[test]
fn readiness_follows_starting_failing_uploads_and_recovery() {
    let s = stream("ready", 1);
    let db = s.dir.sqlite("c.db");
    let dir = s.dir.join("bucket");
    let port = free_port();
    let addr = format!("localhost:{port}");
    let log = s.dir.join("store.log");
    let mut store = start_store(
        &s,
        &[
            "--checkpoint-db",
            &db,
            "--bucket",
            dir.to_str().unwrap(),
            "--from",
            "TRIM_HORIZON",
            "--max-file-age",
            "1s",
            "--lease-duration",
            "2s",
            "--unready-after",
            "1s",
            "--metrics-addr",
            &addr,
            "--spool-dir",
            s.dir.join("spool").to_str().unwrap(),
        ],
        &log,
    );
    let took = wait_for_status(port, "/readyz", 200, Duration::from_secs(20));
    eprintln!("ready after {took:?}");
    assert_eq!(get(port, "/healthz").map(|g| g.0), Some(200));
    assert_eq!(get(port, "/").map(|g| g.0), Some(404));
    assert_eq!(get(port, "/metrics/extra").map(|g| g.0), Some(404));

    // Uploads fail: a file where the bucket directory should be.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    produce(&s, 20);
    let took = wait_for_status(port, "/readyz", 503, Duration::from_secs(20));
    let (_, why) = get(port, "/readyz").unwrap();
    assert!(why.contains("retrying for"), "{why}");
    // Still alive: its loops turn.
    assert_eq!(get(port, "/healthz").map(|g| g.0), Some(200));
    eprintln!("unready {took:?} after the uploads began to fail: {why}");

    std::fs::remove_file(&dir).unwrap();
    let took = wait_for_status(port, "/readyz", 200, Duration::from_secs(30));
    eprintln!("ready again {took:?} after the store came back");
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "no archive uploaded",
        || archives_in(&dir) > 0,
    );
    stop(&mut store);
}

/// Parses the exposition text with prometheus_client's parser and prints
/// `name type` per family and `sample name{labels} value` per sample.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    print("family", f.name, f.type)
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print("sample", s.name, labels, s.value)
"#;

#[test]
fn metrics_parse_with_an_independent_parser_and_count_archives_not_sidecars() {
    let s = stream("metrics", 2);
    let db = s.dir.sqlite("c.db");
    let bucket = new_bucket("metrics");
    let port = free_port();
    let addr = format!(":{port}");
    let log = s.dir.join("store.log");
    produce(&s, 300);
    let mut store = start_store(
        &s,
        &[
            "--checkpoint-db",
            &db,
            "--bucket",
            &bucket,
            "--from",
            "trim-horizon",
            "--max-file-age",
            "1s",
            "--lease-duration",
            "2s",
            "--metrics-addr",
            &addr,
            "--spool-dir",
            s.dir.join("spool").to_str().unwrap(),
        ],
        &log,
    );
    wait_for_status(port, "/readyz", 200, Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (_, body) = get(port, "/metrics").unwrap();
        // An archive is counted at its upload and its commit a moment
        // later: wait for both.
        let nonzero = |series: &str| {
            body.contains(&format!("{series}{{stream=\"{}\"}}", s.name))
                && !body.contains(&format!("{series}{{stream=\"{}\"}} 0\n", s.name))
        };
        if nonzero("triton_store_archives_uploaded_total")
            && nonzero("triton_store_commit_seconds_count")
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no archive uploaded and committed:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    stop(&mut store);
    // python with prometheus_client (scripts/setup-python).
    let parsed = TestCommand::program(python())
        .args(["-c", PARSE])
        .pipe(text.as_bytes());
    assert!(parsed.status.success(), "{}\n{text}", stderr(&parsed));
    let parsed = String::from_utf8(parsed.stdout).unwrap();
    for family in [
        "family triton_store_records counter",
        "family triton_store_record_bytes counter",
        "family triton_store_invalid_records counter",
        "family triton_store_archives_uploaded counter",
        "family triton_store_dead_letter_archives_uploaded counter",
        "family triton_store_uploaded_bytes counter",
        "family triton_retries counter",
        "family triton_store_upload_seconds histogram",
        "family triton_store_commit_seconds histogram",
        "family triton_kinesis_get_records_seconds histogram",
        "family triton_store_spool_bytes gauge",
        "family triton_store_pending_uploads gauge",
        "family triton_store_seconds_since_checkpoint gauge",
        "family triton_store_millis_behind_latest gauge",
        "family triton_store_leases_held gauge",
        "family triton_store_leases_acquired counter",
        "family triton_build_info gauge",
    ] {
        if family == "family triton_retries counter" {
            // Only once something was retried.
            continue;
        }
        assert!(parsed.contains(family), "{family} missing:\n{parsed}");
    }
    let stream_label = format!("stream={}", s.name);
    let sample = |name: &str, labels: &str| -> f64 {
        parsed
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(&format!("sample {name} {labels} "))?;
                rest.parse().ok()
            })
            .unwrap_or_else(|| panic!("no sample {name} {labels}:\n{parsed}"))
    };
    assert_eq!(sample("triton_store_records_total", &stream_label), 300.0);
    // One archive per uploaded archive, not two for its sidecar: as many as
    // the bucket holds.
    let archives = all_keys(&bucket)
        .iter()
        .filter(|k| k.ends_with(".tri"))
        .count() as f64;
    assert_eq!(
        sample("triton_store_archives_uploaded_total", &stream_label),
        archives
    );
    assert!(sample("triton_store_upload_seconds_count", &stream_label) >= 1.0);
    assert!(sample("triton_store_commit_seconds_count", &stream_label) >= 1.0);
    assert!(
        sample(
            "triton_store_millis_behind_latest",
            &format!("shard=shardId-000000000000,{stream_label}")
        ) >= 0.0
    );
    assert_eq!(
        sample(
            "triton_build_info",
            &format!("version={}", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
}

#[test]
fn a_store_configured_by_environment_variables_alone_runs() {
    let s = stream("envonly", 1);
    let dir = s.dir.join("bucket");
    produce(&s, 50);
    let log = s.dir.join("store.log");
    let mut store = triton()
        .arg("store")
        .env("TRITON_CONFIG", &s.config)
        .env("TRITON_STREAM", "events")
        .env("TRITON_BUCKET", &dir)
        .env("TRITON_DB", s.dir.sqlite("c.db"))
        .env("TRITON_FROM", "TRIM_HORIZON")
        .env("TRITON_MAX_FILE_AGE", "1s")
        .env("TRITON_MAX_FILE_SIZE", "1G")
        .env("TRITON_LEASE_DURATION", "2s")
        .env("TRITON_SPOOL_DIR", s.dir.join("spool"))
        .env("TRITON_CLIENT", "envonly")
        .env("TRITON_WORKER_ID", "env-worker")
        .env("TRITON_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while archives_in(&dir) == 0 {
        assert!(
            Instant::now() < deadline,
            "no archive:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut store);
    let log = std::fs::read_to_string(&log).unwrap();
    // JSON lines at info by default: the start, the leases, the stop.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"store started"), "{log}");
    assert!(messages.contains(&"store stopped"), "{log}");
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "store started")
        .unwrap();
    assert_eq!(started["fields"]["client"], "envonly");
    assert_eq!(started["fields"]["worker"], "env-worker");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(&format!("{}-envonly-", s.name))),
        "{names:?}"
    );
}

#[test]
fn a_fatal_error_under_json_logging_is_json() {
    let s = stream("jsonfatal", 1);
    let mut command = s.command(&[
        "store",
        "--bucket",
        "no-such-bucket-17",
        "--checkpoint-db",
        &s.dir.sqlite("c.db"),
        "--log-format",
        "json",
    ]);
    let (out, _) = output_within(&mut command, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(
        last["fields"]["message"],
        "the bucket s3://no-such-bucket-17 does not exist (create it, or check --bucket and --bucket-region)"
    );
    assert_eq!(last["fields"]["exit_code"], 1);
}

#[test]
fn a_broken_entry_of_another_stream_is_a_warning() {
    let s = stream("brokenentry", 1);
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    config.push_str("  regoin: eu-west-1\nother:\n  name: x\n");
    std::fs::write(&s.config, config).unwrap();
    let out = s.triton(&["shards"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let origin = s.config.display();
    assert!(
        err.contains(&format!(
            "config {origin}: stream \"other\": field \"region\" is missing (another stream: ignored)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "config {origin}: stream \"events\": unknown key \"regoin\" is ignored (did you mean \"region\"?)"
        )),
        "{err}"
    );
    // The broken stream itself is an error.
    let out = triton()
        .args(["shards", "--stream", "other"])
        .env("TRITON_CONFIG", &s.config)
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        format!("triton: config {origin}: stream \"other\": field \"region\" is missing")
    );
}

#[test]
fn shards_and_leases_print_one_json_document() {
    let s = stream("jsondoc", 2);
    for flag in ["--output", "--format"] {
        let out = s.triton(&["shards", flag, "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["stream"], s.name.as_str());
        assert_eq!(doc["shards"].as_array().unwrap().len(), 2, "{doc}");
        assert_eq!(doc["shards"][0]["state"], "open");
    }
    // The real name, without a config file.
    let out = triton()
        .args([
            "shards",
            "--stream-name",
            &s.name,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env("TRITON_CONFIG", "/nonexistent/triton.yaml")
        .output();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["shards"].as_array().unwrap().len(), 2, "{doc}");
}

#[test]
fn a_dry_run_reports_an_outage_instead_of_waiting() {
    let s = stream("dryoutage", 1);
    let bucket = new_bucket("dryoutage");
    // Nothing listens on port 1: the database is down, not misnamed.
    let mut command = s.command(&[
        "store",
        "--checkpoint-db",
        "postgres://postgres@127.0.0.1:1/triton",
        "--bucket",
        &bucket,
    ]);
    command.env("TRITON_DRY_RUN", "1");
    let (out, _) = output_within(&mut command, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("triton: "), "{err}");
    assert!(last.contains("127.0.0.1:1"), "{err}");
}
