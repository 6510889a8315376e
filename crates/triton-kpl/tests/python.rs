//! Cross-check with an independent implementation, the PyPI package
//! aws-kinesis-agg (tests/py/kpl.py; installed by scripts/setup-python):
//! its aggregates read here as it wrote them, and ours read there.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use triton_kpl::{aggregate, deaggregate, Tag, UserRecord};

fn python() -> String {
    match std::env::var("TRITON_PYTHON") {
        Ok(p) => p,
        Err(_) => {
            let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
            assert!(
                venv.exists(),
                "the cross-check needs aws-kinesis-agg: run scripts/setup-python (scripts/test \
                 does) or set TRITON_PYTHON"
            );
            venv.display().to_string()
        }
    }
}

/// Runs `kpl.py mode` with `input`, returning its lines.
fn kpl(mode: &str, input: &str) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/kpl.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kpl.py {mode}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn line(r: &UserRecord) -> String {
    format!(
        "{}\t{}\t{}",
        r.partition_key,
        r.explicit_hash_key.as_deref().unwrap_or("-"),
        hex(&r.data)
    )
}

fn user(key: &str, hash: Option<&str>, data: &[u8]) -> UserRecord {
    UserRecord {
        partition_key: key.into(),
        explicit_hash_key: hash.map(str::to_owned),
        data: data.to_vec(),
        tags: Vec::new(),
    }
}

/// Sets of user records: one, thousands (several aggregates there), empty
/// data, explicit hash keys (aws-kinesis-agg reads an explicit hash key
/// for every record of an aggregate that has any, so each set has all or
/// none), binary data.
fn cases() -> Vec<Vec<UserRecord>> {
    vec![
        vec![user("one", None, b"{\"n\":1}")],
        (0..5000)
            .map(|i| {
                user(
                    &format!("user-{}", i % 37),
                    None,
                    format!("record {i}").as_bytes(),
                )
            })
            .collect(),
        vec![
            user("empty", None, b""),
            user("empty", None, b""),
            user("x", None, b"1"),
        ],
        (0..50)
            .map(|i| {
                let hash = format!("{}", u128::MAX / 50 * i);
                user(&format!("k{}", i % 4), Some(&hash), &[i as u8; 100])
            })
            .collect(),
        vec![user("bin", None, &(0..=255).collect::<Vec<u8>>())],
    ]
}

#[test]
fn their_aggregates_read_here_as_they_wrote_them() {
    for records in cases() {
        let input: String = records.iter().map(|r| line(r) + "\n").collect();
        let aggregates = kpl("aggregate", &input);
        assert!(!aggregates.is_empty());
        let mut back = Vec::new();
        for a in &aggregates {
            let blob = unhex(a);
            back.extend(deaggregate(&blob).unwrap().expect("an aggregate"));
        }
        assert_eq!(back, records, "{} aggregate(s)", aggregates.len());
    }
}

#[test]
fn our_aggregates_read_there_as_we_wrote_them() {
    for mut records in cases() {
        // Tags too: the KPL writes none, but the format has them.
        records[0].tags = vec![Tag {
            key: "t".into(),
            value: Some("v".into()),
        }];
        let input: String = records
            .chunks(1000)
            .map(|chunk| hex(&aggregate(chunk)) + "\n")
            .collect();
        let back = kpl("deaggregate", &input);
        let want: Vec<String> = records.iter().map(line).collect();
        assert_eq!(back, want);
    }
}

#[test]
fn damaged_aggregates_are_judged_alike() {
    let good = aggregate(&[user("a", None, b"x"), user("b", None, b"y")]);
    // A digest that does not match: a plain record, for both.
    let mut wrong = good.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0x55;
    assert_eq!(deaggregate(&wrong), Ok(None));
    assert_eq!(
        kpl("deaggregate", &(hex(&wrong) + "\n")),
        [format!("plain\t-\t{}", hex(&wrong))]
    );
    // A truncated message under a matching digest: aws-kinesis-agg (like
    // the KCL) passes it on as a plain record; triton says what is wrong.
    let message = &good[4..good.len() - 16];
    let cut = &message[..message.len() - 2];
    let digest = md5_of(cut);
    let truncated = [&good[..4], cut, &digest[..]].concat();
    assert!(deaggregate(&truncated).is_err());
    assert_eq!(
        kpl("deaggregate", &(hex(&truncated) + "\n")),
        [format!("plain\t-\t{}", hex(&truncated))]
    );
}

/// MD5 by the reference implementation (Python's hashlib), so the test
/// does not take the digest from the code under test.
fn md5_of(data: &[u8]) -> [u8; 16] {
    let out = Command::new(python())
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(bytes.fromhex(sys.argv[1])).hexdigest())",
            &hex(data),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    unhex(text.trim()).try_into().unwrap()
}
