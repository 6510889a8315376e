//! A generated day of archives in the bucket layout: events of every kind
//! a Parquet conversion meets (signed and unsigned ints, float32 and
//! float64, binary, timestamps, lists, nested maps, a field absent from
//! most records, one deep nesting, one field whose type changes), for the
//! conversion tests and benchmarks.

use std::path::{Path, PathBuf};

use triton_core::archive::ArchiveWriter;
use triton_core::key::ArchiveKey;
use triton_core::value::{Record, Timestamp, Value};

/// 2024-10-30 00:00 UTC.
pub const DAY: u64 = 1_730_246_400;

const EVENTS: [&str; 5] = ["page_view", "click", "purchase", "signup", "logout"];
const CITIES: [&str; 4] = ["Lisbon", "Osaka", "Lagos", "Quito"];

/// Event number `n` (deterministic).
pub fn event(n: u64) -> Record {
    let mut r = Record::new();
    r.push("event", EVENTS[(n % 5) as usize]);
    r.push("user_id", Value::UInt(n.wrapping_mul(7919) % 1_000_003));
    r.push("delta", Value::Int((n % 2001) as i64 - 1000));
    r.push("price", Value::F64((n % 10_000) as f64 / 100.0));
    r.push("score", Value::F32((n % 1000) as f32 / 8.0));
    r.push(
        "at",
        Value::Timestamp(Timestamp::new(
            (DAY + n / 12) as i64,
            ((n % 1000) * 1_000_000) as u32,
        )),
    );
    r.push("payload", Value::Bin(n.to_be_bytes().to_vec()));
    r.push(
        "tags",
        Value::Array(
            (0..n % 4)
                .map(|t| Value::Str(format!("t{}", (n + t) % 17).into()))
                .collect(),
        ),
    );
    if !n.is_multiple_of(10) {
        r.push(
            "geo",
            Value::Map(vec![
                (
                    Value::Str("city".into()),
                    Value::Str(CITIES[(n % 4) as usize].into()),
                ),
                (
                    Value::Str("lat".into()),
                    Value::F64((n % 180) as f64 - 90.0),
                ),
            ]),
        );
    }
    if n.is_multiple_of(2) {
        r.push("referrer", format!("https://example.com/{}", n % 97));
    }
    r.push("ok", !n.is_multiple_of(11));
    if n.is_multiple_of(1000) {
        let mut deep = Value::UInt(n);
        for level in ["e", "d", "c", "b", "a"] {
            deep = Value::Map(vec![(Value::Str(level.into()), deep)]);
        }
        r.push("deep", deep);
    }
    // A field whose type changes: a JSON text column.
    r.push(
        "code",
        match n % 3 {
            0 => Value::UInt(n % 500),
            _ => Value::Str(format!("E{}", n % 500).into()),
        },
    );
    r
}

/// Writes `archives` archives of `per_archive` events of stream `stream`,
/// one opened each hour of [`DAY`], under `root` in the bucket layout;
/// returns their paths in reading order.
pub fn write_day(root: &Path, stream: &str, archives: u64, per_archive: u64) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for a in 0..archives {
        let key = ArchiveKey::new(stream, "store", DAY + a * 3600 % 86_400 + a / 24)
            .expect("a valid key");
        let path = root.join(key.to_string());
        std::fs::create_dir_all(path.parent().expect("a day directory")).expect("mkdir");
        let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut w = ArchiveWriter::new(file);
        for i in 0..per_archive {
            w.write_record(&event(a * per_archive + i)).expect("write");
        }
        w.finish().expect("finish");
        paths.push(path);
    }
    paths
}
