//! `triton convert` and `triton schema` on go-triton's fixtures, the
//! Parquet read back by independent readers (pyarrow, DuckDB: installed by
//! scripts/setup-python).

use std::process::Command;

use crate::util::{fixture, path, python, stderr, stdout, triton, Dir};

fn check_with_python(parquet: &std::path::Path, jsonl: &std::path::Path, group: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/py/parquet_check.py"
    );
    let o = Command::new(python())
        .args([script, path(parquet), path(jsonl), group])
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "pyarrow/DuckDB disagree with the records:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Every type go-triton writes (small.tri) and a multi-flush archive, in one
/// Parquet file: pyarrow reads every value as `triton decode` prints it,
/// types included (int64 vs uint64, float32, binary, nanosecond
/// timestamps, structs, lists, JSON text for conflicting fields), and
/// DuckDB's GROUP BY gives the JSON lines' counts; with both codecs.
#[test]
fn convert_writes_what_pyarrow_and_duckdb_read_as_the_records() {
    let dir = Dir::new("convert");
    let inputs = [fixture("small.tri"), fixture("multiflush.tri")];
    let inputs: Vec<&str> = inputs.iter().map(|p| path(p)).collect();
    let decoded = triton().arg("decode").args(&inputs).success();
    let jsonl = dir.write("records.jsonl", &decoded.stdout);
    for codec in ["snappy", "zstd"] {
        let out = dir.join(format!("{codec}.parquet"));
        let o = triton()
            .arg("convert")
            .args(&inputs)
            .args([
                "-o",
                path(&out),
                "--compression",
                codec,
                "--row-group-size",
                "1000",
            ])
            .success();
        let summary = stderr(&o);
        assert!(
            summary.contains("12937 records from 2 archives"),
            "{summary}"
        );
        assert!(
            summary.contains("column \"m.empty\" is JSON text"),
            "{summary}"
        );
        let checked = check_with_python(&out, &jsonl, "kind");
        println!("{codec}: {checked}");
        assert!(checked.contains("12937 rows"), "{checked}");
    }
}

/// `triton schema` prints the schema `convert` writes; given back with
/// --schema it gives the same file; a record that does not fit a schema
/// edited by hand is an error naming the record and field; an existing
/// output is refused without --overwrite.
#[test]
fn schema_prints_what_convert_writes_and_pins_it() {
    let dir = Dir::new("schema");
    let small = fixture("small.tri");
    let o = triton().args(["schema", path(&small)]).success();
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema["fields"][0]["name"], "kind");
    let schema_file = dir.write("schema.json", &o.stdout);
    let inferred = dir.join("inferred.parquet");
    let pinned = dir.join("pinned.parquet");
    triton()
        .args(["convert", path(&small), "-o", path(&inferred)])
        .success();
    triton()
        .args([
            "convert",
            path(&small),
            "-o",
            path(&pinned),
            "--schema",
            path(&schema_file),
        ])
        .success();
    assert_eq!(
        std::fs::read(&inferred).unwrap(),
        std::fs::read(&pinned).unwrap()
    );

    let o = triton()
        .args(["convert", path(&small), "-o", path(&pinned)])
        .output();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));

    // "kind" as an integer column: the first record does not fit.
    let mut edited = schema.clone();
    edited["fields"][0]["type"] = "int64".into();
    let edited_file = dir.write("edited.json", serde_json::to_vec(&edited).unwrap());
    let o = triton()
        .args([
            "convert",
            path(&small),
            "-o",
            path(&dir.join("bad.parquet")),
            "--schema",
        ])
        .arg(path(&edited_file))
        .output();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("record 0") && err.contains("field kind"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.join("bad.parquet").exists(), "no partial output");
}

/// A damaged archive among others: its records before the damage and the
/// other archives are converted, the damage is named, the exit code is 1.
#[test]
fn a_damaged_archive_is_reported_and_the_rest_converted() {
    let dir = Dir::new("convert-damaged");
    let out = dir.join("out.parquet");
    let o = triton()
        .args([
            "convert",
            path(&fixture("corrupt.tri")),
            path(&fixture("multiflush.tri")),
        ])
        .args(["-o", path(&out)])
        .output();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("corrupt.tri") && err.contains("byte"), "{err}");
    let decoded = triton()
        .args(["decode", path(&fixture("multiflush.tri"))])
        .success();
    let jsonl = dir.write("multiflush.jsonl", &decoded.stdout);
    check_with_python(&out, &jsonl, "flag");
}
