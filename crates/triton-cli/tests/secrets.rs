//! Database passwords never reach the terminal: every command that takes a
//! checkpoint database URL, with the URL forms users write (passwords
//! holding delimiters, unencoded '@', libpq keyword strings).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{today, triton, Dir};

/// `triton ARGS`, its stderr after it exits or, for a command that waits
/// for the database, after `wait_for` appears in it (then it is killed).
/// Returns the exit code (None when killed) and stderr.
fn run(dir: &Path, args: &[&str], wait_for: &str, debug: bool) -> (Option<i32>, String) {
    let log = dir.join("stderr.log");
    let mut cmd = triton();
    cmd.env("TRITON_CONFIG", dir.join("triton.yaml"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    if debug {
        cmd.env("RUST_LOG", "debug");
    }
    let mut child = cmd.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        let mut text = String::new();
        std::fs::File::open(&log)
            .and_then(|mut f| f.read_to_string(&mut text))
            .expect("read log");
        if text.contains(wait_for) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: neither exited nor logged {wait_for:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).expect("read log");
    (code, text)
}

/// Each command that opens the checkpoint database, with its other
/// arguments (the database is opened before anything else is contacted).
fn commands(dir: &Path) -> Vec<Vec<String>> {
    let bucket = format!("file://{}", dir.join("bucket").display());
    let today = today().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        s(&["stats", "--client-name", "store"]),
        s(&[
            "audit",
            "--stream",
            "events",
            "--bucket",
            &bucket,
            "--start-date",
            &today,
        ]),
        s(&["tail", "--stream", "events", "--client-name", "reader"]),
        s(&["store", "--stream", "events", "--bucket", &bucket]),
    ]
}

#[test]
fn no_command_shows_a_database_password() {
    let dir = Dir::new("secrets");
    std::fs::create_dir_all(dir.join("bucket")).expect("bucket dir");
    dir.write(
        "triton.yaml",
        "events:\n  name: secrets-never-contacted\n  partition_key: user\n  region: us-east-1\n",
    );
    // (URL, the secret, what the error says). Nothing listens on port 1:
    // the well-formed URLs fail to connect (store waits and says so).
    let refused = [
        (
            "postgres://user:S3cr@tPass@127.0.0.1:1/db",
            vec!["S3cr", "tPass"],
            "%40",
        ),
        (
            "host=127.0.0.1 port=1 password=S3cretPass",
            vec!["S3cretPass", "host=127.0.0.1"],
            "key=value string",
        ),
    ];
    let unavailable = [
        ("postgres://u:pa:ss@127.0.0.1:1/db", vec!["pa:ss"]),
        ("postgres://u:pa/ss@127.0.0.1:1/db", vec!["pa/ss"]),
        (
            "postgres://u:S3cr%40tPass@127.0.0.1:1/db",
            vec!["S3cr", "tPass"],
        ),
        (
            "postgres://u@127.0.0.1:1/db?password=S3cretPass",
            vec!["S3cretPass"],
        ),
    ];
    for command in commands(dir.path()) {
        let store = command[0] == "store";
        for (url, secrets, why) in &refused {
            let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
            args.extend(["--checkpoint-db", url]);
            let (code, err) = run(dir.path(), &args, "\u{0}", false);
            // audit: 2, it could not run.
            let want = if command[0] == "audit" { 2 } else { 1 };
            assert_eq!(code, Some(want), "{args:?}: {err}");
            assert!(err.contains(why), "{args:?}: {err}");
            for secret in secrets {
                assert!(!err.contains(secret), "{args:?} shows {secret}: {err}");
            }
        }
        for (url, secrets) in &unavailable {
            let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
            args.extend(["--checkpoint-db", url]);
            for debug in [false, true] {
                let (code, err) = run(
                    dir.path(),
                    &args,
                    "waiting for the checkpoint database",
                    debug,
                );
                if store {
                    assert_eq!(code, None, "{args:?}: store did not wait: {err}");
                } else {
                    let want = if command[0] == "audit" { 2 } else { 1 };
                    assert_eq!(code, Some(want), "{args:?}: {err}");
                }
                assert!(err.contains("127.0.0.1:1"), "{args:?}: {err}");
                for secret in secrets {
                    assert!(
                        !err.contains(secret),
                        "{args:?} (debug {debug}) shows {secret}: {err}"
                    );
                }
            }
        }
    }
}
