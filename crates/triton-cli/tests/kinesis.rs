//! `triton shards`, `put` and `tail` against the local Kinesis server
//! (kinesalite, started by scripts/test through scripts/services).

use std::collections::HashSet;

use crate::util::{call, path, records, stderr, stdout, stream, triton};

fn lines(n: std::ops::Range<u64>) -> String {
    records(n, 37)
}

#[test]
fn shards_prints_ids_and_with_long_the_lineage() {
    let s = stream("shards", 3);
    let o = s.triton(&["shards"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "shardId-000000000000\nshardId-000000000001\nshardId-000000000002\n"
    );
    let o = s.triton(&["shards", "--long"]);
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0][..3], ["shard", "state", "parent"]);
    assert_eq!(rows.len(), 4);
    assert!(rows[1..]
        .iter()
        .all(|r| r.len() == 6 && r[1] == "open" && r[2] == "-"));
    assert_eq!(rows[1][4], "0");

    let o = s.triton(&["shards", "--config", "/nonexistent/triton.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/triton.yaml") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn put_then_tail_gives_back_every_line_once() {
    let s = stream("roundtrip", 4);
    let summary = stderr(&s.put("in.jsonl", &lines(0..3000)));
    assert!(
        summary.contains("3000 records") && summary.contains("0 reordered"),
        "{summary}"
    );

    // All 3000 from the oldest, polling every 200 ms, and `extra`.
    let tail_all = |extra: &[&str]| {
        let base = [
            "tail",
            "--from",
            "trim-horizon",
            "--max-records",
            "3000",
            "--poll-interval",
            "200ms",
        ];
        s.triton(&[&base[..], extra].concat())
    };
    let o = tail_all(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 3000);
    let want = lines(0..3000);
    let want: HashSet<&str> = want.lines().collect();
    assert_eq!(got.iter().copied().collect::<HashSet<_>>(), want);

    // --with-meta: where each record came from, around the same record.
    let o = tail_all(&["--with-meta"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut records = HashSet::new();
    for line in stdout(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["shard"].as_str().unwrap().starts_with("shardId-"),
            "{line}"
        );
        assert!(v["sequence"].as_str().unwrap().len() > 20, "{line}");
        // put's partition key is the configured field of the record.
        assert_eq!(
            v["partition_key"].as_str(),
            v["record"]["user"].as_str(),
            "{line}"
        );
        let arrival = v["arrival"].as_str().unwrap();
        assert!(
            arrival.ends_with('Z') && arrival.starts_with("20"),
            "{line}"
        );
        assert!(v.get("archive").is_none());
        records.insert(v["record"].to_string());
    }
    assert_eq!(records.len(), 3000);
}

#[test]
fn tail_with_a_client_goes_on_where_it_stopped() {
    let s = stream("resume", 2);
    s.put("in.jsonl", &lines(0..1000));
    let db = s.dir.sqlite("cp.db");
    let common = [
        "--client-name",
        "viewer",
        "--checkpoint-db",
        db.as_str(),
        "--poll-interval",
        "200ms",
    ];

    let mut args = vec!["tail", "--from", "trim-horizon", "-n", "300"];
    args.extend(common);
    let first = s.triton(&args);
    assert!(first.status.success(), "{}", stderr(&first));

    // After the client's checkpoints; a shard the first run printed
    // nothing of starts at --from. Stops when idle.
    let mut args = vec!["tail", "--from", "trim-horizon", "--idle-timeout", "3s"];
    args.extend(common);
    let second = s.triton(&args);
    assert!(second.status.success(), "{}", stderr(&second));

    let (a, b) = (stdout(&first), stdout(&second));
    assert_eq!(a.lines().count(), 300);
    assert_eq!(
        b.lines().count(),
        700,
        "exactly what the first run did not print"
    );
    let all: HashSet<&str> = a.lines().chain(b.lines()).collect();
    assert_eq!(all.len(), 1000);

    // The checkpoints are visible to `triton stats`.
    let o = triton()
        .args(["stats", "--client-name", "viewer", "--checkpoint-db", &db])
        .output();
    let stats = stdout(&o);
    assert_eq!(stats.lines().count(), 2, "{stats}{}", stderr(&o));
    assert!(stats
        .lines()
        .all(|l| l.starts_with(&format!("viewer.{}.shardId-", s.name))));
}

/// `put --aggregate` packs records into KPL aggregates; `tail` prints the
/// user records one by one, and a `tail -n` that stops inside an aggregate
/// is resumed by the next `tail` of its client at the next user record.
#[test]
fn tail_resumes_inside_an_aggregate_put_with_aggregate() {
    let s = stream("aggregate", 1);
    let file = s.file("in.jsonl", &lines(0..1000));
    let put = s
        .command(&[
            "put",
            "--aggregate",
            "--aggregate-size",
            "8192",
            path(&file),
        ])
        .success();
    let summary = stderr(&put);
    assert!(summary.contains("1000 records in "), "{summary}");
    let db = s.dir.sqlite("cp.db");
    let common = [
        "--client-name",
        "viewer",
        "--checkpoint-db",
        db.as_str(),
        "--poll-interval",
        "200ms",
        "--from",
        "trim-horizon",
        "--with-meta",
    ];
    // 137 is not a multiple of the aggregates' sizes: it stops inside one.
    let first = s.triton(&[&["tail", "-n", "137"][..], &common].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    let second = s.triton(&[&["tail", "--idle-timeout", "3s"][..], &common].concat());
    assert!(second.status.success(), "{}", stderr(&second));
    let parse = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (parse(&stdout(&first)), parse(&stdout(&second)));
    assert_eq!(a.len(), 137);
    assert_eq!(b.len(), 863, "exactly what the first run did not print");
    let last = &a[136];
    let next = &b[0];
    assert_eq!(
        last["sequence"], next["sequence"],
        "stopped inside an aggregate"
    );
    assert_eq!(
        next["sub_sequence"].as_u64(),
        Some(last["sub_sequence"].as_u64().unwrap() + 1)
    );
    let all: HashSet<String> = a
        .iter()
        .chain(&b)
        .map(|v| v["record"].to_string())
        .collect();
    let want: HashSet<String> = lines(0..1000)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(all, want);
}

#[test]
fn tail_reports_invalid_records_and_goes_on() {
    let s = stream("invalid", 1);
    // "aGVsbG8=" is "hello": not MessagePack.
    let status = call(
        "PutRecord",
        &format!(
            r#"{{"StreamName":"{}","PartitionKey":"k","Data":"aGVsbG8="}}"#,
            s.name
        ),
    );
    assert_eq!(status, 200);
    s.put("in.jsonl", &lines(0..2));
    let o = s.triton(&[
        "tail",
        "--from",
        "trim-horizon",
        "--idle-timeout",
        "2s",
        "--poll-interval",
        "200ms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
    let err = stderr(&o);
    assert!(
        err.contains("invalid record in shard shardId-000000000000 at sequence number")
            && err.contains("5 bytes, starting 68656c6c6f"),
        "{err}"
    );
}

#[test]
fn put_and_tail_errors_are_one_line() {
    let s = stream("errors", 1);
    let input = s.file("bad.jsonl", &format!("{}{{\"n\":9}}\n", lines(0..2)));
    let o = s.triton(&["put", path(&input)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("put: 2 records"),
        "the records before were written: {err}"
    );
    assert!(
        err.contains("bad.jsonl line 3: record has no partition key field \"user\""),
        "{err}"
    );

    for (args, says) in [
        (
            vec!["tail", "--from", "checkpoint"],
            "--from checkpoint needs --client-name",
        ),
        (vec!["tail", "--from", "last tuesday"], "is not a time"),
        (vec!["tail", "--limit", "0"], "0"),
        (vec!["tail", "--idle-timeout", "soon"], "not a duration"),
    ] {
        let o = s.triton(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}
