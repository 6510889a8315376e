//! The `triton` binary as users run it: exit codes, stdout, one-line errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use crate::util::{fixture, path, stderr, stdout, triton, Dir, TestCommand};

fn run(args: &[&str]) -> Output {
    triton().args(args).output()
}

#[test]
fn decode_prints_exactly_what_go_printed() {
    for name in ["multiflush", "incompressible"] {
        let f = fixture(&format!("{name}.tri"));
        let o = triton().args(["decode", path(&f)]).success();
        let go = std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("go json");
        assert!(stdout(&o) == go, "{name}: output differs from go-triton's");
        assert!(o.stderr.is_empty(), "{name}: {}", stderr(&o));
    }
}

#[test]
fn decode_reads_standard_input_and_several_files() {
    let small = std::fs::read(fixture("small.tri")).expect("fixture");
    let o = triton()
        .args(["decode", "-", path(&fixture("exotic.tri"))])
        .pipe(&small);
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
        let o = triton()
            .args(["decode", path(&fixture(name))])
            .fails_with(1);
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
    let dir = Dir::new("notarchive");
    for (name, text) in [("data.json", "{\"a\":1}\n"), ("tiny.json", "{}\n")] {
        let f = dir.write(name, text);
        let o = triton().args(["decode", path(&f)]).fails_with(1);
        assert_eq!(
            stderr(&o),
            format!(
                "triton: {} is not a .tri archive (it does not start with the Snappy framing stream identifier)\n",
                f.display()
            )
        );
    }
    let o = triton().arg("decode").pipe(b"[1,2,3]\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "triton: <stdin> is not a .tri archive (it does not start with the Snappy framing stream identifier)\n"
    );
    let o = triton()
        .args(["decode", path(&fixture("empty.tri"))])
        .success();
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
}

#[test]
fn decode_goes_on_with_the_next_file_and_still_fails() {
    let bad = fixture("notmap.tri");
    let good = fixture("small.tri");
    let missing = fixture("no-such-file.tri");
    let o = run(&["decode", path(&bad), path(&missing), path(&good)]);
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
        .args(["decode", path(&f)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
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

/// `triton encode INPUT -o ARCHIVE`.
fn encode(input: &Path, archive: &Path) -> TestCommand {
    let mut c = triton();
    c.args(["encode", path(input), "-o", path(archive)]);
    c
}

/// `triton encode INPUT -o ARCHIVE`, then `triton decode ARCHIVE`; both
/// must succeed.
fn encode_then_decode(input: &Path, archive: &Path) -> Output {
    encode(input, archive).success();
    triton().args(["decode", path(archive)]).success()
}

#[test]
fn encode_then_decode_gives_the_same_json() {
    let dir = Dir::new("roundtrip");
    let lines = [
        r#"{"a":1,"b":-2,"big":18446744073709551615,"f":1.5,"s":"x<y","n":null,"arr":[true,{"k":"v"}]}"#,
        "",
        r#"{"kind":"second","tiny":1e-7,"huge":1e+21}"#,
    ];
    let input = dir.write("in.jsonl", lines.join("\n"));
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
}

#[test]
fn encode_reencodes_go_output_to_the_same_records() {
    // multiflush.json holds only JSON-representable values.
    let dir = Dir::new("go");
    let src = fixture("multiflush.json");
    let o = encode_then_decode(&src, &dir.join("multiflush.tri"));
    let go = std::fs::read_to_string(&src).expect("go json");
    assert!(stdout(&o) == go, "decode(encode(go json)) differs");
}

#[test]
fn encode_names_the_bad_line_and_leaves_nothing_behind() {
    let dir = Dir::new("badline");
    let input = dir.write("in.jsonl", "{\"ok\":1}\n{\"ok\":2}\n[1,2]\n{\"ok\":3}\n");
    let out = dir.join("out.tri");
    let o = encode(&input, &out).fails_with(1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(!out.exists(), "partial archive left at -o PATH");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("in.jsonl")],
        "temp file left behind"
    );
}

/// `encode` refuses a record that `decode` would refuse (one limit for
/// writer and reader), naming its line and size; nothing is left at -o.
#[test]
fn encode_refuses_a_record_decode_could_not_read() {
    let dir = Dir::new("oversized");
    let mut text = String::from("{\"ok\":1}\n{\"big\":\"");
    text.push_str(&"x".repeat(70 << 20));
    text.push_str("\"}\n{\"ok\":3}\n");
    let input = dir.write("in.jsonl", text);
    let out = dir.join("out.tri");
    let o = encode(&input, &out).fails_with(1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains(&format!("{} bytes", (70 << 20) + 10)), "{err}");
    assert!(err.contains("67108864 bytes readers accept"), "{err}");
    assert!(!out.exists(), "partial archive left at -o PATH");
}

/// A bad JSON line is named by the input's line and the column in it,
/// once (serde_json's own "at line 1 column N" is not repeated).
#[test]
fn encode_and_put_name_the_line_and_column_of_bad_json() {
    let dir = Dir::new("badjson");
    let input = dir.write("input.json", "{\"ok\":1}\n\n{\"a\": }\n");
    let o = encode(&input, &dir.join("out.tri")).fails_with(1);
    let want = format!(
        "triton: {} line 3, column 7: expected value\n",
        input.display()
    );
    assert_eq!(stderr(&o), want);

    // put stops at the same line before sending anything.
    dir.write("input.json", "{\"a\": }\n");
    put_fails_saying(
        &dir,
        &input,
        &format!(
            "triton: {} line 1, column 7: expected value",
            input.display()
        ),
    );
}

/// `triton put --config DIR/triton.yaml --stream events INPUT`, with a
/// stream whose partition_key is `key` and every AWS request sent to a
/// closed local port (the tests using this send none).
fn put(dir: &Dir, key: &str, input: &Path) -> Output {
    let config = dir.write(
        "triton.yaml",
        format!("events:\n  name: cli-put-errors\n  partition_key: {key}\n  region: us-east-1\n"),
    );
    triton()
        .args(["put", "--config", path(&config)])
        .args(["--stream", "events", path(input)])
        .env_remove("AWS_PROFILE")
        .env_remove("TRITON_PARTITION_KEY")
        .env("AWS_ACCESS_KEY_ID", "triton-test")
        .env("AWS_SECRET_ACCESS_KEY", "triton-test")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
}

/// `put` of `input` exits with 1, the last line it prints being `want`.
fn put_fails_saying(dir: &Dir, input: &Path, want: &str) {
    let o = put(dir, "user", input);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().last(), Some(want), "{err}");
}

#[test]
fn put_of_a_record_without_its_key_names_random_key() {
    let dir = Dir::new("nokey");
    let input = dir.write("input.json", "{\"n\":1}\n");
    put_fails_saying(
        &dir,
        &input,
        &format!(
            "triton: {} line 1: record has no partition key field \"user\" (give such records a random key with --random-key)",
            input.display()
        ),
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let o = triton().args(["completions", "bash"]).success();
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
    let o = triton().arg("man").success();
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
    let o = triton().args(["man", "store"]).success();
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

/// A copy of go-triton's checkpoint database in `dir`, as a sqlite:// URL.
fn checkpoint_db(dir: &Dir) -> String {
    std::fs::copy(fixture("checkpoint.db"), dir.join("checkpoint.db")).expect("copy fixture");
    dir.sqlite("checkpoint.db")
}

#[test]
fn stats_prints_graphite_lines_as_go_triton_did() {
    let dir = Dir::new("stats");
    let db = checkpoint_db(&dir);
    let o = triton()
        .args(["stats", "--client-name", "store", "--checkpoint-db", &db])
        .success();
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

    let o = triton()
        .args(["stats", "--client-name", "other", "--checkpoint-db", &db])
        .args(["--output", "json"])
        .success();
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
    let dir = Dir::new("stats-errors");
    let missing = dir.sqlite("missing.db");
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
        let o = triton().arg("stats").args(&args).fails_with(1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("triton: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!dir.join("missing.db").exists(), "stats created a database");
    }
}
