//! `triton convert` and `triton schema` on go-triton's fixtures, the
//! Parquet read back by independent readers (pyarrow, DuckDB: installed by
//! scripts/setup-python).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use triton_s3::{read_object, ArchiveStore, PutOptions};

use crate::util::{
    fixture, new_bucket, path, python, runtime, stderr, stdout, triton, Archive, Dir,
};

fn check_with_python(parquet: &Path, jsonl: &Path, group: &str) -> String {
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
    // TRITON_CLIENT (set for the stream commands) does not get in the way.
    triton()
        .env("TRITON_CLIENT", "store")
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

// ---- convert --to: a stream's archives as a partitioned dataset ----------

const SINGLE_SHARD_SIDECAR: &str = r#"{"shards": {"shardId-000000000007": {"min_sequence_number": "1", "max_sequence_number": "9"}}, "size": 4685, "sha256": "a522ec3912d452b22ef6ce9ad28f1741ea5d294897b194ffa36e7942f789f1d2"}"#;

/// Two days of go-triton's archives (no sidecar but one, of a single
/// shard): an empty archive, and a corrupt one.
fn two_days(a: &Archive) {
    a.put(&[
        ("20241030/user-events-store-1730246400.tri", "small.tri"),
        ("20241030/user-events-store-1730250000.tri", "empty.tri"),
        (
            "20241030/user-events-store-1730329200.tri",
            "multiflush.tri",
        ),
        (
            "20241031/user-events-store-1730336400.tri",
            "incompressible.tri",
        ),
        ("20241031/user-events-store-1730340000.tri", "corrupt.tri"),
    ]);
    runtime().block_on(async {
        a.store
            .put_bytes(
                "20241030/user-events-store-1730246400.tri.metadata",
                SINGLE_SHARD_SIDECAR.as_bytes().to_vec(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
    });
}

/// DEST in a bucket of the local S3 server: the store and the prefix.
type S3Dest<'a> = Option<(&'a dyn ArchiveStore, &'a str)>;

/// The dataset as local files: DEST itself, or a copy of its objects.
fn local_copy(dest: &str, s3: S3Dest<'_>, into: &Path) -> PathBuf {
    let Some((store, prefix)) = s3 else {
        return PathBuf::from(dest);
    };
    let _ = std::fs::remove_dir_all(into);
    runtime().block_on(async {
        for o in store.list(prefix).await.unwrap() {
            let bytes = read_object(store, &o.key).await.unwrap().unwrap();
            let path = into.join(&o.key[prefix.len()..]);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    });
    into.to_owned()
}

/// Every file of the dataset, with its bytes' SHA-256.
fn contents(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, hex(&Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest(root: &Path, partition: &str) -> serde_json::Value {
    let text = std::fs::read(root.join(partition).join("_triton_manifest.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// The JSON lines `triton cat` prints for the range, and per day.
fn cat_lines(a: &Archive, dir: &Dir, days: &[&str]) -> (PathBuf, BTreeMap<String, u64>) {
    let mut all = Vec::new();
    let mut per_day = BTreeMap::new();
    for day in days {
        let o = a.cat(&["--start-date", day, "--skip-corrupt", "--no-progress"]);
        let lines = o.stdout.iter().filter(|b| **b == b'\n').count() as u64;
        per_day.insert(
            format!("dt={}-{}-{}", &day[..4], &day[4..6], &day[6..]),
            lines,
        );
        all.extend_from_slice(&o.stdout);
    }
    (dir.write("range.jsonl", all), per_day)
}

fn partitions_line(checked: &str) -> BTreeMap<String, u64> {
    let line = checked
        .lines()
        .find_map(|l| l.strip_prefix("partitions "))
        .unwrap_or_else(|| panic!("no partitions line in {checked}"));
    serde_json::from_str(line).unwrap()
}

fn dataset(a: &Archive, dest: &str, more: &[&str]) -> Output {
    let mut args = vec![
        "convert",
        "--stream",
        "events",
        "--start-date",
        "20241030",
        "--end-date",
        "20241031",
        "--to",
        dest,
        "--no-progress",
    ];
    args.extend_from_slice(more);
    a.triton(&args)
}

/// `triton audit --converted DEST` of the two days, which must find
/// problems (exit 1): its standard output.
fn audit_converted(a: &Archive, dest: &str) -> String {
    let o = a.triton(&[
        "audit",
        "--stream",
        "events",
        "--start-date",
        "20241030",
        "--end-date",
        "20241031",
        "--no-verify",
        "--converted",
        dest,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    stdout(&o)
}

/// The whole range as Parquet under DEST: every value as `triton cat`
/// prints it (pyarrow), DuckDB's GROUP BY over one glob with Hive
/// partitioning equal to the JSON lines' counts, per column value and per
/// day; manifests naming each archive with its SHA-256 and records; the
/// damage reported. Re-runs: nothing rewritten; a new archive rewrites its
/// day only; other settings rewrite every day and leave no file of the
/// earlier layout behind.
fn a_dataset_holds_every_record_once_and_reruns_are_idempotent(
    a: Archive,
    dest: &str,
    s3: S3Dest<'_>,
) {
    two_days(&a);
    let scratch = Dir::new("dataset-copy");
    let local = |n: &str| local_copy(dest, s3, &scratch.join(n));
    let small = ["--row-group-size", "1000", "--target-file-size", "200K"];

    let o = dataset(&a, dest, &small);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("20241031/user-events-store-1730340000.tri: byte")
            && err.contains("1 damaged archive"),
        "{err}"
    );
    let (jsonl, per_day) = cat_lines(&a, &scratch, &["20241030", "20241031"]);
    let root = local("first");
    let checked = check_with_python(&root, &jsonl, "kind");
    assert_eq!(partitions_line(&checked), per_day);
    assert_eq!(per_day["dt=2024-10-30"], 12937);

    let m = manifest(&root, "dt=2024-10-30");
    assert_eq!(m["stream"], "user-events");
    let archives = m["archives"].as_array().unwrap();
    let want = [
        ("small.tri", 22),
        ("empty.tri", 0),
        ("multiflush.tri", 12915),
    ];
    assert_eq!(archives.len(), want.len());
    for (got, (name, records)) in archives.iter().zip(want) {
        let sha = hex(&Sha256::digest(std::fs::read(fixture(name)).unwrap()));
        assert_eq!(got["sha256"], sha.as_str(), "{got}");
        assert_eq!(got["records"], records, "{got}");
    }
    let files = m["files"].as_array().unwrap();
    assert!(files.len() > 1, "200K files: {files:?}");
    let mut rows = 0;
    for f in files {
        let name = f["name"].as_str().unwrap();
        let bytes = std::fs::read(root.join("dt=2024-10-30").join(name)).unwrap();
        assert_eq!(f["size"], bytes.len() as u64);
        assert_eq!(f["sha256"], hex(&Sha256::digest(&bytes)).as_str());
        rows += f["records"].as_u64().unwrap();
    }
    assert_eq!(rows, 12937);
    let damaged = &manifest(&root, "dt=2024-10-31")["archives"][1];
    assert!(
        damaged["damaged"].as_str().unwrap().contains("byte"),
        "{damaged}"
    );
    assert!(damaged["sha256"].is_null(), "{damaged}");

    // The same run again: nothing written, the damage said again.
    let before = contents(&root);
    let o = dataset(&a, dest, &small);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.matches(": up to date").count(), 2, "{err}");
    assert!(err.contains("1 damaged archive"), "{err}");
    assert_eq!(contents(&local("second")), before);

    // A new archive on the second day: `audit --converted` finds it not
    // converted; only that day is written again.
    a.put(&[("20241031/user-events-store-1730343600.tri", "small.tri")]);
    let out = audit_converted(&a, dest);
    assert!(
        out.contains("converted: 4 of 6 archives (15237 records)")
            && out.contains("NOT CONVERTED 20241031/user-events-store-1730343600.tri")
            && out.contains("PARTLY CONVERTED 20241031/user-events-store-1730340000.tri in dt=2024-10-31: 0 records"),
        "{out}"
    );
    let o = dataset(&a, dest, &small);
    let err = stderr(&o);
    assert!(err.contains("dt=2024-10-30: up to date"), "{err}");
    assert!(
        err.contains("dt=2024-10-31: writing (its archives changed)"),
        "{err}"
    );
    let third = local("third");
    let after = contents(&third);
    for (k, v) in &before {
        if k.starts_with("dt=2024-10-30") {
            assert_eq!(after.get(k), Some(v), "{k}");
        }
    }

    // Files of another size: every day again, one file each, none of the
    // earlier parts left to be read twice.
    let o = dataset(&a, dest, &["--row-group-size", "1000"]);
    let err = stderr(&o);
    assert_eq!(
        err.matches("writing (it was written with other settings)")
            .count(),
        2,
        "{err}"
    );
    let root = local("fourth");
    let names: Vec<String> = contents(&root).into_keys().collect();
    assert_eq!(
        names,
        [
            "dt=2024-10-30/_triton_manifest.json",
            "dt=2024-10-30/part-00000.parquet",
            "dt=2024-10-31/_triton_manifest.json",
            "dt=2024-10-31/part-00000.parquet",
        ]
    );
    let (jsonl, per_day) = cat_lines(&a, &scratch, &["20241030", "20241031"]);
    let checked = check_with_python(&root, &jsonl, "kind");
    assert_eq!(partitions_line(&checked), per_day);

    // --dry-run --replace says what it would write and writes nothing.
    let before = contents(&root);
    let o = dataset(
        &a,
        dest,
        &["--row-group-size", "1000", "--dry-run", "--replace"],
    );
    let err = stderr(&o);
    assert_eq!(err.matches("would write (--replace)").count(), 2, "{err}");
    assert_eq!(contents(&local("fifth")), before);
}

#[test]
fn a_dataset_in_a_directory_holds_every_record_once() {
    let a = Archive::local("dataset-local");
    let dest = a.dir.join("lake").display().to_string();
    a_dataset_holds_every_record_once_and_reruns_are_idempotent(a, &dest, None);
}

#[test]
fn a_dataset_in_s3_holds_every_record_once() {
    let a = Archive::s3("dataset-s3");
    let (bucket, store) = new_bucket("lake");
    let dest = format!("s3://{bucket}/lake");
    a_dataset_holds_every_record_once_and_reruns_are_idempotent(a, &dest, Some((&store, "lake/")));
}

/// --with-meta: each row's archive, index and (from a single-shard
/// sidecar) shard; --partition-by hour: dt=/hour= directories, an empty
/// archive's partition holding only its manifest. A day converted by hour
/// is refused by day (its records would be there twice), and so is a
/// Parquet file triton did not write.
#[test]
fn provenance_columns_hour_partitions_and_refusals() {
    let a = Archive::local("dataset-meta");
    two_days(&a);
    let lake = a.dir.join("lake");
    let dest = path(&lake).to_owned();
    let o = dataset(&a, &dest, &["--with-meta", "--partition-by", "hour"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let names: Vec<String> = contents(&lake).into_keys().collect();
    assert_eq!(
        names,
        [
            "dt=2024-10-30/hour=00/_triton_manifest.json",
            "dt=2024-10-30/hour=00/part-00000.parquet",
            "dt=2024-10-30/hour=01/_triton_manifest.json",
            "dt=2024-10-30/hour=23/_triton_manifest.json",
            "dt=2024-10-30/hour=23/part-00000.parquet",
            "dt=2024-10-31/hour=01/_triton_manifest.json",
            "dt=2024-10-31/hour=01/part-00000.parquet",
            "dt=2024-10-31/hour=02/_triton_manifest.json",
        ]
    );
    let script = r#"
import sys, duckdb
rows = duckdb.sql(f"""SELECT _archive, min(_index), max(_index), count(*), any_value(_shard), count(_shard), any_value(hour)
  FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = 1, hive_types_autocast = 0) GROUP BY 1 ORDER BY 1""").fetchall()
for r in rows: print("|".join(str(x) for x in r))
"#;
    let o = Command::new(python())
        .args(["-c", script, &dest])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "20241030/user-events-store-1730246400.tri|0|21|22|shardId-000000000007|22|00\n\
         20241030/user-events-store-1730329200.tri|0|12914|12915|None|0|23\n\
         20241031/user-events-store-1730336400.tri|0|2299|2300|None|0|01\n"
    );
    // audit --converted reads the manifests of hour partitions too, and
    // holds the one with a sidecar to its SHA-256; a file gone is found.
    let out = audit_converted(&a, &dest);
    assert!(
        out.contains("converted: 4 of 5 archives (15237 records)"),
        "{out}"
    );
    assert!(!out.contains("MISSING FILE"), "{out}");
    std::fs::remove_file(lake.join("dt=2024-10-31/hour=01/part-00000.parquet")).unwrap();
    let out = audit_converted(&a, &dest);
    assert!(
        out.contains("MISSING FILE dt=2024-10-31/hour=01/part-00000.parquet: missing"),
        "{out}"
    );
    // The archive replaced since (its sidecar says another SHA-256).
    let sidecar = a
        .dir
        .join("archive/20241030/user-events-store-1730246400.tri.metadata");
    let other = SINGLE_SHARD_SIDECAR.replace("a522ec39", "00000000");
    std::fs::write(&sidecar, other).unwrap();
    let out = audit_converted(&a, &dest);
    assert!(
        out.contains("CONVERTED OTHER 20241030/user-events-store-1730246400.tri in dt=2024-10-30/hour=00: converted from SHA-256 a522ec39"),
        "{out}"
    );

    std::fs::write(&sidecar, SINGLE_SHARD_SIDECAR).unwrap();

    // A part no manifest names (an interrupted run's): audit finds it, and
    // the next run writes that partition again without it.
    let hour00 = lake.join("dt=2024-10-30/hour=00");
    std::fs::copy(
        hour00.join("part-00000.parquet"),
        hour00.join("part-00007.parquet"),
    )
    .unwrap();
    let out = audit_converted(&a, &dest);
    assert!(
        out.contains("EXTRA FILE dt=2024-10-30/hour=00/part-00007.parquet"),
        "{out}"
    );
    // A partition of another stream is never rewritten.
    let manifest23 = lake.join("dt=2024-10-30/hour=23/_triton_manifest.json");
    let original = std::fs::read_to_string(&manifest23).unwrap();
    std::fs::write(
        &manifest23,
        original.replace("\"user-events\"", "\"billing\""),
    )
    .unwrap();
    let o = dataset(&a, &dest, &["--with-meta", "--partition-by", "hour"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("hour=23/_triton_manifest.json: a partition of stream billing"),
        "{err}"
    );
    std::fs::write(&manifest23, original).unwrap();
    let o = dataset(&a, &dest, &["--with-meta", "--partition-by", "hour"]);
    let err = stderr(&o);
    assert!(
        err.contains("dt=2024-10-30/hour=00: writing (part-00007.parquet is not in its manifest)")
            && err.contains("dt=2024-10-31/hour=01: writing (part-00000.parquet is missing"),
        "{err}"
    );
    assert!(!hour00.join("part-00007.parquet").exists());
    let out = audit_converted(&a, &dest);
    assert!(
        out.contains("converted: 4 of 5 archives (15237 records)"),
        "{out}"
    );
    assert!(!out.contains("EXTRA") && !out.contains("MISSING"), "{out}");

    // The same range by day into the same DEST.
    let o = dataset(&a, &dest, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("converted by hour") && err.contains("twice"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let other = a.dir.join("other");
    std::fs::create_dir_all(other.join("dt=2024-10-30")).unwrap();
    std::fs::write(other.join("dt=2024-10-30/theirs.parquet"), b"PAR1").unwrap();
    let o = dataset(&a, path(&other), &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("theirs.parquet") && err.contains("did not write"),
        "{err}"
    );
    assert!(!other.join("dt=2024-10-31").exists(), "{err}");
}

/// A generated day of a million records of every kind (24 archives):
/// converted with the defaults, pyarrow reads every value as `triton cat`
/// prints it, and DuckDB counts every row per event, as the JSON lines do,
/// in one partition.
#[test]
fn a_generated_day_of_a_million_records() {
    let a = Archive::local("dataset-day");
    let paths = triton_tests::day::write_day(&a.dir.join("archive"), "user-events", 24, 41_667);
    assert_eq!(paths.len(), 24);
    let lake = a.dir.join("lake");
    let o = a.triton(&[
        "convert",
        "--stream",
        "events",
        "--start-date",
        "20241030",
        "--to",
        path(&lake),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("1000008 records in 1 files"), "{err}");
    assert!(err.contains("column \"code\" is JSON text"), "{err}");
    let jsonl = a.dir.join("day.jsonl");
    let out = std::fs::File::create(&jsonl).unwrap();
    let o = triton()
        .env("TRITON_CONFIG", a.dir.join("triton.yaml"))
        .args(["cat", "--stream", "events", "--start-date", "20241030"])
        .args(["--bucket", &a.bucket])
        .stdout(out)
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let checked = check_with_python(&lake, &jsonl, "event");
    assert_eq!(
        partitions_line(&checked),
        BTreeMap::from([("dt=2024-10-30".to_string(), 1_000_008)])
    );
    assert!(checked.contains("1000008 rows"), "{checked}");
}
