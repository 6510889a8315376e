//! `triton cat` over a bucket on the local S3 server (moto, started by
//! scripts/test through scripts/services) and over a local directory: the
//! same checks for both.

use crate::util::{fixture, stderr, triton, Archive};

fn decode(fixtures: &[&str]) -> Vec<u8> {
    let out = triton()
        .arg("decode")
        .args(fixtures.iter().map(|f| fixture(f)))
        .output();
    assert!(out.status.success() || fixtures.contains(&"truncated.tri"));
    out.stdout
}

/// Three days across a month boundary, out of upload order, with a sidecar
/// and an archive of another client on a day outside the range.
fn three_days(a: &Archive) {
    a.put(&[
        (
            "20241101/user-events-store-1730421000.tri",
            "incompressible.tri",
        ),
        ("20241030/user-events-store-1730329200.tri", "small.tri"),
        (
            "20241030/user-events-store-1730329200.tri.metadata",
            "small.json",
        ),
        (
            "20241031/user-events-store-1730336400.tri",
            "multiflush.tri",
        ),
        ("20241102/user-events-backfill-1730505600.tri", "small.tri"),
    ]);
}

fn reproduces_a_multi_day_range(a: Archive) {
    three_days(&a);
    let out = a.cat(&["--start-date", "20241030", "--end-date", "20241101"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = decode(&["small.tri", "multiflush.tri", "incompressible.tri"]);
    assert_eq!(
        out.stdout.iter().filter(|&&b| b == b'\n').count(),
        22 + 12_915 + 2_300
    );
    assert!(
        out.stdout == expected,
        "cat differs from decode of the same files"
    );
    // Not a terminal: no progress line, nothing on stderr.
    assert_eq!(stderr(&out), "");

    // With --with-meta: the same records, each in an envelope naming its
    // archive and index.
    let meta = a.cat(&[
        "--start-date",
        "20241030",
        "--end-date",
        "20241101",
        "--with-meta",
    ]);
    assert!(meta.status.success(), "{}", stderr(&meta));
    let plain: Vec<&[u8]> = expected
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let lines: Vec<serde_json::Value> = String::from_utf8(meta.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), plain.len());
    let mut index = 0;
    let mut archive = String::new();
    for (line, plain) in lines.iter().zip(&plain) {
        let key = line["archive"].as_str().unwrap();
        if key != archive {
            archive = key.to_owned();
            index = 0;
        }
        assert_eq!(line["index"], index, "{line}");
        assert!(line.get("shard").is_none() && line.get("arrival").is_none());
        let record: serde_json::Value = serde_json::from_slice(plain).unwrap();
        assert_eq!(line["record"], record);
        index += 1;
    }
    assert_eq!(archive, "20241101/user-events-store-1730421000.tri");

    let out = a.cat(&[
        "--start-date",
        "20241030",
        "--end-date",
        "20241101",
        "--list",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = |f: &str| std::fs::metadata(fixture(f)).unwrap().len();
    assert_eq!(
        String::from_utf8(out.stdout.clone()).unwrap(),
        format!(
            "20241030/user-events-store-1730329200.tri\t{}\n\
             20241031/user-events-store-1730336400.tri\t{}\n\
             20241101/user-events-store-1730421000.tri\t{}\n",
            size("small.tri"),
            size("multiflush.tri"),
            size("incompressible.tri")
        )
    );
    let total = size("small.tri") + size("multiflush.tri") + size("incompressible.tri");
    assert_eq!(stderr(&out), format!("3 archives, {total} bytes\n"));
}

fn clients_and_bad_input(a: Archive) {
    three_days(&a);
    // Two clients in the range: an error naming both.
    let out = a.cat(&["--start-date", "20241101", "--end-date", "20241102"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "triton: archives of user-events from more than one client in the range: \
         backfill (1 archives), store (1 archives); choose one with --client-name \
         (e.g. --client-name backfill)\n"
    );
    let out = a.cat(&[
        "--start-date",
        "20241101",
        "--end-date",
        "20241102",
        "--client-name",
        "backfill",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == decode(&["small.tri"]));

    let out = a.cat(&["--start-date", "20241101", "--end-date", "20241030"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "triton: the end date 20241030 is before the start date 20241101\n"
    );
    // 2024-10-30 is a day too; 2024/10/30 is not.
    let out = a.cat(&["--start-date", "2024-10-30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = a.cat(&["--start-date", "2024/10/30"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--start-date"), "{}", stderr(&out));
    let out = a.cat(&["--start-date", "20241301"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.cat(&["--start-date", "20241030", "--client-name", "a-b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("triton: --client-name: "),
        "{}",
        stderr(&out)
    );
    // A day without archives: nothing printed, said on stderr, success.
    let out = a.cat(&["--start-date", "20200101"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out)
            .starts_with("triton: no archives of user-events from 20200101 to 20200101 in "),
        "{}",
        stderr(&out)
    );
}

fn corrupt_archives(a: Archive) {
    a.put(&[
        ("20241030/user-events-store-1730329200.tri", "small.tri"),
        ("20241030/user-events-store-1730329300.tri", "truncated.tri"),
        (
            "20241031/user-events-store-1730336400.tri",
            "incompressible.tri",
        ),
    ]);
    let range = ["--start-date", "20241030", "--end-date", "20241031"];
    let first_three: Vec<u8> = decode(&["truncated.tri"]);

    // Without --skip-corrupt: stops at the damage, after printing what came
    // before it.
    let out = a.cat(&range);
    assert_eq!(out.status.code(), Some(1));
    let mut expected = decode(&["small.tri"]);
    expected.extend_from_slice(&first_three);
    assert!(out.stdout == expected);
    let err = stderr(&out);
    assert!(
        err.starts_with("triton: 20241030/user-events-store-1730329300.tri: byte ")
            && err.contains("(record 3)")
            && err.lines().count() == 1,
        "{err}"
    );

    // With it: the next day is read too, and the damage is listed at the end.
    let out = a.cat(&[&range[..], &["--skip-corrupt"]].concat());
    assert_eq!(out.status.code(), Some(1));
    expected.extend_from_slice(&decode(&["incompressible.tri"]));
    assert!(out.stdout == expected);
    let err = stderr(&out);
    assert!(
        err.contains("damaged archive(s) were not read to the end:\n  20241030/user-events-store-1730329300.tri: byte "),
        "{err}"
    );
}

/// Each check once per backend, as `s3::name` and `local::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod s3 {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Archive::s3(stringify!($name)));
                }
            )*
        }
        mod local {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Archive::local(stringify!($name)));
                }
            )*
        }
    };
}

both_backends!(
    reproduces_a_multi_day_range,
    clients_and_bad_input,
    corrupt_archives
);

#[test]
fn a_missing_bucket_is_one_line() {
    triton_tests::local_endpoint("AWS_ENDPOINT_URL_S3");
    let a = Archive::local("missing");
    let out = a.cat(&[
        "--start-date",
        "20241030",
        "--bucket",
        "no-such-bucket-here",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("triton: ListObjectsV2 s3://no-such-bucket-here/20241030/user-events-: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = a.cat(&["--start-date", "20241030", "--bucket", "./no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "triton: list ./no/such/dir: no such directory\n"
    );
}
