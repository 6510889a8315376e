//! The `triton` binary as users run it: exit codes, stdout, one-line errors.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn triton() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_triton"));
    c.env_remove("RUST_LOG");
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/go-triton")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    triton().args(args).output().expect("run triton")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triton-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn decode_prints_exactly_what_go_printed() {
    for name in ["multiflush", "incompressible"] {
        let f = fixture(&format!("{name}.tri"));
        let o = run(&["decode", f.to_str().expect("path")]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let go = std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("go json");
        assert!(stdout(&o) == go, "{name}: output differs from go-triton's");
        assert!(o.stderr.is_empty(), "{name}: {}", stderr(&o));
    }
}

#[test]
fn decode_reads_standard_input_and_several_files() {
    let small = std::fs::read(fixture("small.tri")).expect("fixture");
    let mut child = triton()
        .args(["decode", "-", fixture("exotic.tri").to_str().expect("path")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&small)
        .expect("feed");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success());
    assert_eq!(stdout(&o).lines().count(), 22 + 6);
}

#[test]
fn decode_errors_are_one_line_after_the_good_records() {
    // (fixture, records printed before the error, text the error must contain)
    let cases = [
        ("notmap.tri", 1, "byte 10 (record 1): invalid record at decompressed byte 5: a record must be a map, found array"),
        ("intkey.tri", 0, "keys must be strings, found int key"),
        ("truncated.tri", 3, "byte 3215 (record 3): file ends inside a chunk"),
        ("corrupt.tri", 0, "byte 10 (record 0): corrupt Snappy block"),
        ("noheader.tri", 0, "noheader.tri is not a .tri archive (it does not start with the Snappy framing stream identifier)"),
    ];
    for (name, records, text) in cases {
        let f = fixture(name);
        let o = run(&["decode", f.to_str().expect("path")]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert_eq!(stdout(&o).lines().count(), records, "{name}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("triton: "), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: error must name the file: {err}"
        );
        assert!(err.contains(text), "{name}: {err}");
    }
}

/// A file that is not an archive at all (JSON, from the first bytes) is
/// named as such, not as a damaged archive; an empty file is an empty
/// archive.
#[test]
fn decode_says_when_a_file_is_not_an_archive() {
    let dir = temp_dir("notarchive");
    for (name, text) in [("data.json", "{\"a\":1}\n"), ("tiny.json", "{}\n")] {
        let f = dir.join(name);
        std::fs::write(&f, text).expect("input");
        let o = run(&["decode", f.to_str().expect("path")]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert_eq!(
            stderr(&o),
            format!(
                "triton: {} is not a .tri archive (it does not start with the Snappy framing stream identifier)\n",
                f.display()
            )
        );
    }
    let mut child = triton()
        .arg("decode")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"[1,2,3]\n")
        .expect("feed");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "triton: <stdin> is not a .tri archive (it does not start with the Snappy framing stream identifier)\n"
    );
    let o = run(&["decode", fixture("empty.tri").to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decode_goes_on_with_the_next_file_and_still_fails() {
    let bad = fixture("notmap.tri");
    let good = fixture("small.tri");
    let missing = fixture("no-such-file.tri");
    let o = run(&[
        "decode",
        bad.to_str().expect("path"),
        missing.to_str().expect("path"),
        good.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).lines().count(), 1 + 22);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("no-such-file.tri"), "{err}");
}

#[test]
fn decode_into_a_closed_pipe_ends_quietly() {
    let f = fixture("multiflush.tri");
    let mut child = triton()
        .args(["decode", f.to_str().expect("path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("one line");
    // Dropping our end closes the pipe, as `| head -1` does.
    let o = child.wait_with_output().expect("wait");
    assert!(first.starts_with('{'));
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

/// `triton encode INPUT -o ARCHIVE`, then `triton decode ARCHIVE`; both
/// must succeed.
fn encode_then_decode(input: &Path, archive: &Path) -> Output {
    let (input, archive) = (
        input.to_str().expect("path"),
        archive.to_str().expect("path"),
    );
    let o = run(&["encode", input, "-o", archive]);
    assert!(o.status.success(), "encode: {}", stderr(&o));
    let o = run(&["decode", archive]);
    assert!(o.status.success(), "decode: {}", stderr(&o));
    o
}

#[test]
fn encode_then_decode_gives_the_same_json() {
    let dir = temp_dir("roundtrip");
    let input = dir.join("in.jsonl");
    let lines = [
        r#"{"a":1,"b":-2,"big":18446744073709551615,"f":1.5,"s":"x<y","n":null,"arr":[true,{"k":"v"}]}"#,
        "",
        r#"{"kind":"second","tiny":1e-7,"huge":1e+21}"#,
    ];
    std::fs::write(&input, lines.join("\n")).expect("input");
    let o = encode_then_decode(&input, &dir.join("out.tri"));
    assert_eq!(
        stdout(&o),
        concat!(
            r#"{"a":1,"arr":[true,{"k":"v"}],"b":-2,"big":18446744073709551615,"f":1.5,"n":null,"s":"x\u003cy"}"#,
            "\n",
            r#"{"huge":1e+21,"kind":"second","tiny":1e-7}"#,
            "\n"
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn encode_reencodes_go_output_to_the_same_records() {
    // multiflush.json holds only JSON-representable values.
    let dir = temp_dir("go");
    let src = fixture("multiflush.json");
    let o = encode_then_decode(&src, &dir.join("multiflush.tri"));
    let go = std::fs::read_to_string(&src).expect("go json");
    assert!(stdout(&o) == go, "decode(encode(go json)) differs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn encode_names_the_bad_line_and_leaves_nothing_behind() {
    let dir = temp_dir("badline");
    let input = dir.join("in.jsonl");
    std::fs::write(&input, "{\"ok\":1}\n{\"ok\":2}\n[1,2]\n{\"ok\":3}\n").expect("input");
    let out = dir.join("out.tri");
    let o = run(&[
        "encode",
        input.to_str().expect("path"),
        "-o",
        out.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!out.exists(), "partial archive left at -o PATH");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("in.jsonl")],
        "temp file left behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `encode` refuses a record that `decode` would refuse (one limit for
/// writer and reader), naming its line and size; nothing is left at -o.
#[test]
fn encode_refuses_a_record_decode_could_not_read() {
    let dir = temp_dir("oversized");
    let input = dir.join("in.jsonl");
    let mut text = String::from("{\"ok\":1}\n{\"big\":\"");
    text.push_str(&"x".repeat(70 << 20));
    text.push_str("\"}\n{\"ok\":3}\n");
    std::fs::write(&input, text).expect("input");
    let out = dir.join("out.tri");
    let o = run(&[
        "encode",
        input.to_str().expect("path"),
        "-o",
        out.to_str().expect("path"),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains(&format!("{} bytes", (70 << 20) + 10)), "{err}");
    assert!(err.contains("67108864 bytes readers accept"), "{err}");
    assert!(!out.exists(), "partial archive left at -o PATH");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad JSON line is named by the input's line and the column in it,
/// once (serde_json's own "at line 1 column N" is not repeated).
#[test]
fn encode_and_put_name_the_line_and_column_of_bad_json() {
    let dir = temp_dir("badjson");
    let input = dir.join("input.json");
    std::fs::write(&input, "{\"ok\":1}\n\n{\"a\": }\n").expect("input");
    let out = dir.join("out.tri");
    let o = run(&[
        "encode",
        input.to_str().expect("path"),
        "-o",
        out.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "triton: {} line 3, column 7: expected value\n",
        input.display()
    );
    assert_eq!(stderr(&o), want);

    // put stops at the same line before sending anything.
    std::fs::write(&input, "{\"a\": }\n").expect("input");
    let o = put(&dir, "user", &input);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "triton: {} line 1, column 7: expected value",
                input.display()
            )
            .as_str()
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `triton put --config DIR/triton.yaml --stream events INPUT`, with a
/// stream whose partition_key is `key` and every AWS request sent to a
/// closed local port (the tests using this send none).
fn put(dir: &Path, key: &str, input: &Path) -> Output {
    let config = dir.join("triton.yaml");
    std::fs::write(
        &config,
        format!("events:\n  name: cli-put-errors\n  partition_key: {key}\n  region: us-east-1\n"),
    )
    .expect("config");
    triton()
        .args(["put", "--config", config.to_str().expect("path")])
        .args(["--stream", "events", input.to_str().expect("path")])
        .env_remove("AWS_PROFILE")
        .env_remove("TRITON_PARTITION_KEY")
        .env("AWS_ACCESS_KEY_ID", "triton-test")
        .env("AWS_SECRET_ACCESS_KEY", "triton-test")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run triton put")
}

#[test]
fn put_of_a_record_without_its_key_names_random_key() {
    let dir = temp_dir("nokey");
    let input = dir.join("input.json");
    std::fs::write(&input, "{\"n\":1}\n").expect("input");
    let o = put(&dir, "user", &input);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "triton: {} line 1: record has no partition key field \"user\" (give such records a random key with --random-key)",
                input.display()
            )
            .as_str()
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let o = run(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in [
        "store",
        "cat",
        "audit",
        "decode",
        "encode",
        "completions",
        "--quiet",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        assert!(
            o.status.success() && !o.stdout.is_empty(),
            "{shell}: {}",
            stderr(&o)
        );
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    // clap_mangen's pages open with the definition of the apostrophe
    // string (`.ie`/`.el`), then the title.
    let o = run(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    let title = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "));
    assert!(
        title.is_some_and(|l| l.starts_with(".TH triton 1")),
        "{page}"
    );
    for word in ["store", "decode", "completions", "\\-\\-quiet"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
    let o = run(&["man", "store"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(".TH triton-store 1"), "{}", stdout(&o));
    let o = run(&["man", "stor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("triton: no subcommand \"stor\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_explains_the_commands() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for word in ["decode", "encode", "RUST_LOG"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let o = run(&["decode", "--help"]);
    assert!(stdout(&o).contains("byte offset"));
}

/// A copy of go-triton's checkpoint database, as a sqlite:// URL.
fn checkpoint_db(tag: &str) -> String {
    let dir = temp_dir(tag);
    let path = dir.join("checkpoint.db");
    std::fs::copy(fixture("checkpoint.db"), &path).expect("copy fixture");
    format!("sqlite://{}", path.display())
}

#[test]
fn stats_prints_graphite_lines_as_go_triton_did() {
    let db = checkpoint_db("stats");
    let o = run(&["stats", "--client-name", "store", "--checkpoint-db", &db]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, shard) in lines
        .iter()
        .zip(["shardId-000000000000", "shardId-000000000001"])
    {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[0], format!("store.user_activity_prod.{shard}.age"));
        let age: i64 = fields[1].parse().expect("age");
        let now: i64 = fields[2].parse().expect("now");
        assert_eq!(age, now - 1_795_962_400, "{line}");
    }

    let o = run(&[
        "stats",
        "--client-name",
        "other",
        "--checkpoint-db",
        &db,
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One document, as aws-cli prints.
    let doc: serde_json::Value =
        serde_json::from_str(stdout(&o).trim()).expect("one JSON document");
    let rows = doc["checkpoints"].as_array().expect("checkpoints");
    assert_eq!(rows.len(), 1, "{doc}");
    let row = &rows[0];
    assert_eq!(row["shard"], "shardId-000000000000");
    assert_eq!(
        row["sequence_number"],
        "49590338271490256608559692538361571095921575989136588802"
    );
    assert_eq!(row["updated"], 1_795_962_400);
}

#[test]
fn stats_errors_are_one_line_and_exit_1() {
    let dir = temp_dir("stats-errors");
    let missing = format!("sqlite://{}", dir.join("missing.db").display());
    for (args, want) in [
        (
            vec!["--client-name", "store", "--checkpoint-db", &missing],
            "does not exist",
        ),
        (vec!["--client-name", "my-store"], "must not contain '-'"),
        (
            vec!["--client-name", "store", "--checkpoint-db", "mysql://h/db"],
            "unknown scheme",
        ),
        (
            vec![
                "--client-name",
                "store",
                "--checkpoint-db",
                "postgres://u:hunter2@127.0.0.1:1/db",
            ],
            "u:***@127.0.0.1:1/db is unavailable",
        ),
    ] {
        let o = triton()
            .arg("stats")
            .args(&args)
            .env_remove("TRITON_DB")
            .output()
            .expect("run");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("triton: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!dir.join("missing.db").exists(), "stats created a database");
    }
}
