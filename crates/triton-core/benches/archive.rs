//! Archive throughput: reading and writing `.tri` files, each beside the raw
//! Snappy framing floor measured in the same run.
//!
//! # Workload
//!
//! 1,000,000 generated event records of about 190 bytes of MessagePack each
//! (the average is printed to stderr once), built deterministically with a
//! xorshift generator so every run measures the same bytes:
//!
//! | field     | MessagePack                                                  |
//! |-----------|--------------------------------------------------------------|
//! | `type`    | str, one of a few event types                                |
//! | `user_id` | int                                                          |
//! | `ts`      | float64, unix seconds                                        |
//! | `session` | str, 16 to 32 hex characters                                 |
//! | `event`   | str                                                          |
//! | `amount`  | float64 or nil (about half each)                             |
//! | `props`   | map: `page` str, `ref` str, `ab` array of small strs or ints, `mobile` bool |
//!
//! The records exist once as [`Record`]s and once as MessagePack bytes, and
//! the archive is written once into memory: no timed code touches the disk.
//! Every benchmark processes all 1M records per iteration: `time` is the
//! time for 1M records, and criterion's `thrpt` line is MB/s of the
//! records' MessagePack (the same bytes in every benchmark, so the floor's
//! figure divided by another's is that one's ratio to the floor).
//!
//! - `decode/floor_snap_frame`: `snap::read::FrameDecoder` over the archive
//!   into `io::sink()` (decompression and CRC only, no MessagePack).
//! - `decode/raw`: [`ArchiveReader::next_raw`] (records delimited and
//!   validated, no values built).
//! - `decode/values`: [`ArchiveReader::next_record`].
//! - `decode/values_get`: `next_record`, then [`Record::get`] of two fields
//!   (what a user of owned records does).
//! - `decode/view_get`: [`ArchiveReader::next_ref`], then
//!   [`RecordRef::get`](triton_core::msgpack::RecordRef::get) of the same
//!   two fields; `decode/view_fields`: every field of the view, and one
//!   field of the nested map, read in place.
//! - `decode/typed`: [`ArchiveReader::next_typed`] into the event's struct
//!   (owned strings); `decode/typed_borrowed`: [`Decoder::next_typed`] into
//!   the same struct borrowing its strings; `decode/typed_rmp_serde`: the
//!   typed decode before this one (`next_raw`, then `rmp_serde::from_slice`).
//! - `decode/json_raw`: `next_raw` plus [`json::write_raw_record`] and a
//!   newline into a buffer emptied past 1 MiB, as `triton decode` writes to
//!   a buffered stdout.
//! - `decode/json_values`: `next_record` plus [`json::write_record`].
//! - `decode/*_read_ahead`: the same with [`ArchiveReader::with_read_ahead`],
//!   which decompresses on a second thread.
//! - `decode/json_lines`: [`json::write_lines`] into `io::sink()` with read
//!   ahead and one formatting thread per core: exactly what `triton decode`
//!   does.
//! - `encode/floor_snap_frame`: `snap::write::FrameEncoder` over the
//!   concatenated MessagePack in one `write_all`.
//! - `encode/raw`: [`ArchiveWriter::write_raw`] of each record's bytes.
//! - `encode/raw_parallel`: the same with [`ArchiveWriter::with_threads`]
//!   (one compression thread per core).
//! - `encode/values`: [`ArchiveWriter::write_record`] of each [`Record`].
//!
//! # Running
//!
//! ```text
//! cargo bench -p triton-core --bench archive
//! cargo bench -p triton-core --bench archive -- decode/values   # one benchmark
//! ```
//!
//! The whole run takes about a minute and a half on two cores. Sampling is
//! flat with ten samples, so criterion's "Unable to complete 10 samples"
//! warnings for the slower benchmarks are expected and harmless.
//!
//! # Reference figures (go-triton, same 1M records)
//!
//! | operation                    | Go        | target here                         |
//! |------------------------------|-----------|-------------------------------------|
//! | decode to values             | 1.80 s    | <= 0.36 s and within 2x of the floor |
//! | encode                       | 1.40 s    | >= 5x faster: <= 0.28 s             |
//! | decode + JSON printing       | about 6 s | >= 1M records/s: <= 1 s             |
//! | snappy + msgpack floor       | 0.22 s    | (`floor_snap_frame` is this floor)  |

use std::hint::black_box;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use triton_core::archive::{ArchiveReader, ArchiveWriter, Decoder};
use triton_core::json;
use triton_core::msgpack::{encode_record, ValueRef};
use triton_core::value::{Record, Value};

const RECORDS: usize = 1_000_000;

/// The JSON buffer is emptied once it holds more than this, as a buffered
/// stdout would be flushed.
const JSON_FLUSH: usize = 1 << 20;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TYPES: &[&str] = &["page_view", "click", "purchase", "add_to_cart", "signup"];

const EVENTS: &[&str] = &[
    "home_banner_click",
    "product_detail_view",
    "checkout_started",
    "search_results_view",
    "cart_item_added",
    "newsletter_signup_submit",
];

const CATEGORIES: &[&str] = &["shoes", "jackets", "electronics", "books", "garden"];

const REFS: &[&str] = &[
    "https://www.google.com/",
    "https://t.co/x8Kd2",
    "direct",
    "newsletter-2024-05",
    "https://www.facebook.com/",
];

const HEX: &[u8; 16] = b"0123456789abcdef";

fn event(rng: &mut Rng, i: usize) -> Record {
    let mut rec = Record::new();
    rec.push("type", rng.pick(TYPES));
    rec.push("user_id", rng.below(50_000_000) as i64);
    let ts = 1_700_000_000.0 + i as f64 * 0.0864 + rng.below(1_000_000) as f64 / 1e6;
    rec.push("ts", ts);
    let session_len = 16 + rng.below(17) as usize;
    let session: String = (0..session_len)
        .map(|_| char::from(HEX[rng.below(16) as usize]))
        .collect();
    rec.push("session", session);
    rec.push("event", rng.pick(EVENTS));
    if rng.below(2) == 0 {
        rec.push("amount", Value::Nil);
    } else {
        rec.push("amount", rng.below(100_000) as f64 / 100.0);
    }
    let page = format!(
        "/products/{}/{}",
        rng.pick(CATEGORIES),
        rng.below(1_000_000)
    );
    let ab: Vec<Value> = (0..1 + rng.below(4))
        .map(|_| {
            if rng.below(2) == 0 {
                Value::from(format!("exp{}:{}", rng.below(100), rng.below(3)))
            } else {
                Value::Int(rng.below(100) as i64)
            }
        })
        .collect();
    let props = vec![
        (Value::from("page"), Value::from(page)),
        (Value::from("ref"), Value::from(rng.pick(REFS))),
        (Value::from("ab"), Value::Array(ab)),
        (Value::from("mobile"), Value::Bool(rng.below(2) == 0)),
    ];
    rec.push("props", Value::Map(props));
    rec
}

/// The workload's events as a library user would type them.
mod typed {
    use std::fmt;

    use serde::de::{Deserializer, Visitor};
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    pub struct Event {
        #[serde(rename = "type")]
        pub kind: String,
        pub user_id: i64,
        pub ts: f64,
        pub session: String,
        pub event: String,
        pub amount: Option<f64>,
        pub props: Props,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    pub struct Props {
        pub page: String,
        #[serde(rename = "ref")]
        pub referrer: String,
        pub ab: Vec<Ab<String>>,
        pub mobile: bool,
    }

    /// The same, borrowing its strings from the decoder's buffer.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    pub struct EventRef<'a> {
        #[serde(rename = "type")]
        pub kind: &'a str,
        pub user_id: i64,
        pub ts: f64,
        pub session: &'a str,
        pub event: &'a str,
        pub amount: Option<f64>,
        #[serde(borrow)]
        pub props: PropsRef<'a>,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    pub struct PropsRef<'a> {
        pub page: &'a str,
        #[serde(rename = "ref")]
        pub referrer: &'a str,
        #[serde(borrow)]
        pub ab: Vec<Ab<&'a str>>,
        pub mobile: bool,
    }

    /// An A/B entry: a name or a number. (A visitor, as a user who cares
    /// for speed writes it; `#[serde(untagged)]` buffers every value.)
    #[derive(Debug)]
    #[allow(dead_code)]
    pub enum Ab<S> {
        Name(S),
        Number(i64),
    }

    /// A name as the target type keeps it: owned, or borrowed from the input.
    pub trait Name<'de>: Sized {
        fn from_input(s: &'de str) -> Self;
    }

    impl<'de> Name<'de> for String {
        fn from_input(s: &'de str) -> String {
            s.to_owned()
        }
    }

    impl<'de: 'a, 'a> Name<'de> for &'a str {
        fn from_input(s: &'de str) -> &'a str {
            s
        }
    }

    struct AbVisitor<S>(std::marker::PhantomData<S>);

    impl<'de, S: Name<'de>> Visitor<'de> for AbVisitor<S> {
        type Value = Ab<S>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Ab<S>, E> {
            Ok(Ab::Name(S::from_input(s)))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Ab<S>, E> {
            Ok(Ab::Number(n))
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Ab<S>, E> {
            i64::try_from(n).map(Ab::Number).map_err(E::custom)
        }
    }

    impl<'de, S: Name<'de>> Deserialize<'de> for Ab<S> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ab<S>, D::Error> {
            d.deserialize_any(AbVisitor(std::marker::PhantomData))
        }
    }
}

/// Everything the benchmarks read, built once.
struct Data {
    records: Vec<Record>,
    /// All records' MessagePack, concatenated.
    msgpack: Vec<u8>,
    /// End offset of each record in `msgpack`.
    ends: Vec<usize>,
    /// The `.tri` archive of all records.
    archive: Arc<[u8]>,
}

impl Data {
    fn build() -> Data {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let records: Vec<Record> = (0..RECORDS).map(|i| event(&mut rng, i)).collect();
        let mut msgpack = Vec::with_capacity(RECORDS * 200);
        let mut ends = Vec::with_capacity(RECORDS);
        for rec in &records {
            encode_record(rec, &mut msgpack);
            ends.push(msgpack.len());
        }
        let mut w = ArchiveWriter::new(Vec::new());
        for rec in &records {
            w.write_record(rec).expect("write record");
        }
        let archive: Arc<[u8]> = w.finish().expect("finish archive").into();
        let data = Data {
            records,
            msgpack,
            ends,
            archive,
        };
        let mut r = ArchiveReader::new(&data.archive[..]);
        let mut n = 0;
        while let Some(raw) = r.next_raw().expect("read back") {
            assert_eq!(raw, data.raw(n), "record {n} reads back");
            n += 1;
        }
        assert_eq!(n, RECORDS);
        eprintln!(
            "workload: {RECORDS} records, {:.1} bytes of MessagePack each on average, \
             {} MB of MessagePack, archive {} MB",
            data.msgpack.len() as f64 / RECORDS as f64,
            data.msgpack.len() / 1_000_000,
            data.archive.len() / 1_000_000,
        );
        data
    }

    fn raw(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.msgpack[start..self.ends[i]]
    }

    fn raws(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).map(|i| self.raw(i))
    }
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, data: &Data) {
    // Each iteration takes a sizeable fraction of a second: flat sampling
    // keeps the run to ten iterations or a few seconds per benchmark.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(data.msgpack.len() as u64));
}

/// How the benchmarked reader gets its chunks.
#[derive(Clone, Copy)]
enum Mode {
    /// [`ArchiveReader::new`]: everything on the benchmark's thread.
    Direct,
    /// [`ArchiveReader::with_read_ahead`]: decompression on a helper thread.
    ReadAhead,
}

fn reader(archive: &Arc<[u8]>, mode: Mode) -> ArchiveReader<io::Cursor<Arc<[u8]>>> {
    let input = io::Cursor::new(black_box(Arc::clone(archive)));
    match mode {
        Mode::Direct => ArchiveReader::new(input),
        Mode::ReadAhead => ArchiveReader::with_read_ahead(input).expect("spawn read-ahead"),
    }
}

/// Passes every record's raw bytes to `f`, checking none is missing.
fn each_raw(archive: &Arc<[u8]>, mode: Mode, mut f: impl FnMut(&[u8])) {
    let mut r = reader(archive, mode);
    let mut n = 0;
    while let Some(raw) = r.next_raw().expect("next_raw") {
        f(raw);
        n += 1;
    }
    assert_eq!(n, RECORDS);
}

/// Passes every decoded record to `f`, checking none is missing.
fn each_record(archive: &Arc<[u8]>, mode: Mode, mut f: impl FnMut(Record)) {
    let mut r = reader(archive, mode);
    let mut n = 0;
    while let Some(rec) = r.next_record().expect("next_record") {
        f(rec);
        n += 1;
    }
    assert_eq!(n, RECORDS);
}

/// Ends a JSON line, emptying the buffer as a flushed stdout would be.
fn end_line(out: &mut Vec<u8>) {
    out.push(b'\n');
    if out.len() > JSON_FLUSH {
        black_box(&*out);
        out.clear();
    }
}

fn decode(c: &mut Criterion, data: &Data) {
    let mut group = c.benchmark_group("decode");
    configure(&mut group, data);

    group.bench_function("floor_snap_frame", |b| {
        b.iter(|| {
            let mut dec = snap::read::FrameDecoder::new(black_box(&data.archive[..]));
            let n = io::copy(&mut dec, &mut io::sink()).expect("snap decode");
            assert_eq!(n, data.msgpack.len() as u64);
        })
    });

    let mut out = Vec::with_capacity(JSON_FLUSH + 64 * 1024);
    for (suffix, mode) in [("", Mode::Direct), ("_read_ahead", Mode::ReadAhead)] {
        group.bench_function(format!("raw{suffix}"), |b| {
            b.iter(|| {
                each_raw(&data.archive, mode, |raw| {
                    black_box(raw.len());
                })
            })
        });

        group.bench_function(format!("values{suffix}"), |b| {
            b.iter(|| each_record(&data.archive, mode, |rec| drop(black_box(rec))))
        });

        // What `triton decode` does: raw bytes straight to JSON, no values.
        group.bench_function(format!("json_raw{suffix}"), |b| {
            let mut scratch = json::RawWriter::new();
            b.iter(|| {
                each_raw(&data.archive, mode, |raw| {
                    json::write_raw_record(&mut out, &mut scratch, raw).expect("valid record");
                    end_line(&mut out);
                })
            })
        });
    }

    // Typed decodes into the event's own struct, all on this thread.
    group.bench_function("typed", |b| {
        b.iter(|| {
            let mut r = reader(&data.archive, Mode::Direct);
            let mut n = 0;
            while let Some(e) = r.next_typed::<typed::Event>().expect("next_typed") {
                black_box(&e);
                n += 1;
            }
            assert_eq!(n, RECORDS);
        })
    });

    group.bench_function("typed_borrowed", |b| {
        b.iter(|| {
            let archive = black_box(&data.archive[..]);
            let mut d = Decoder::new();
            let (mut at, mut n) = (0, 0);
            loop {
                let used = d.feed(&archive[at..]).expect("feed");
                at += used;
                while let Some(e) = d.next_typed::<typed::EventRef<'_>>().expect("next_typed") {
                    black_box(&e);
                    n += 1;
                }
                if used == 0 {
                    break;
                }
            }
            d.finish(&archive[at..]).expect("clean end");
            assert_eq!(n, RECORDS);
        })
    });

    // Owned records, then two fields read as a user would.
    group.bench_function("values_get", |b| {
        b.iter(|| {
            each_record(&data.archive, Mode::Direct, |rec| {
                black_box(rec.get("user_id").and_then(Value::as_i64));
                black_box(rec.get("type").and_then(Value::as_str));
            })
        })
    });

    // The same two fields from views: nothing decoded but what is read.
    group.bench_function("view_get", |b| {
        b.iter(|| {
            let mut r = reader(&data.archive, Mode::Direct);
            let mut n = 0;
            while let Some(v) = r.next_ref().expect("next_ref") {
                black_box(v.get("user_id").and_then(|x| x.as_i64()));
                black_box(v.get("type").and_then(|x| x.as_str()));
                n += 1;
            }
            assert_eq!(n, RECORDS);
        })
    });

    group.bench_function("view_fields", |b| {
        b.iter(|| {
            let mut r = reader(&data.archive, Mode::Direct);
            let mut n = 0;
            while let Some(v) = r.next_ref().expect("next_ref") {
                for (k, x) in v.fields() {
                    black_box((k, x));
                }
                if let Some(ValueRef::Map(props)) = v.get("props") {
                    black_box(props.get("page").and_then(|p| p.as_str()));
                }
                n += 1;
            }
            assert_eq!(n, RECORDS);
        })
    });

    // The typed decode before: validate the record's bytes, then rmp-serde.
    group.bench_function("typed_rmp_serde", |b| {
        b.iter(|| {
            each_raw(&data.archive, Mode::Direct, |raw| {
                let e: typed::Event = rmp_serde::from_slice(raw).expect("rmp-serde");
                black_box(&e);
            })
        })
    });

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    group.bench_function("json_lines", |b| {
        b.iter(|| {
            let mut r = reader(&data.archive, Mode::ReadAhead);
            let n = json::write_lines(&mut r, &mut io::sink(), threads).expect("json lines");
            assert_eq!(n, RECORDS as u64);
        })
    });

    group.bench_function("json_values", |b| {
        b.iter(|| {
            each_record(&data.archive, Mode::Direct, |rec| {
                json::write_record(&mut out, &rec);
                end_line(&mut out);
            })
        })
    });

    group.finish();
}

fn encode(c: &mut Criterion, data: &Data) {
    let mut group = c.benchmark_group("encode");
    configure(&mut group, data);
    let capacity = data.archive.len() + 64 * 1024;

    group.bench_function("floor_snap_frame", |b| {
        b.iter(|| {
            let mut enc = snap::write::FrameEncoder::new(Vec::with_capacity(capacity));
            enc.write_all(black_box(&data.msgpack))
                .expect("snap encode");
            let out = enc.into_inner().expect("snap flush");
            black_box(out.len())
        })
    });

    group.bench_function("raw", |b| {
        b.iter(|| {
            let mut w = ArchiveWriter::new(Vec::with_capacity(capacity));
            for raw in data.raws() {
                w.write_raw(black_box(raw)).expect("write_raw");
            }
            black_box(w.finish().expect("finish").len())
        })
    });

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    group.bench_function("raw_parallel", |b| {
        b.iter(|| {
            let mut w = ArchiveWriter::new(Vec::with_capacity(capacity)).with_threads(threads);
            for raw in data.raws() {
                w.write_raw(black_box(raw)).expect("write_raw");
            }
            black_box(w.finish().expect("finish").len())
        })
    });

    group.bench_function("values", |b| {
        b.iter(|| {
            let mut w = ArchiveWriter::new(Vec::with_capacity(capacity));
            for rec in &data.records {
                w.write_record(black_box(rec)).expect("write_record");
            }
            black_box(w.finish().expect("finish").len())
        })
    });

    group.finish();
}

fn main() {
    let data = Data::build();
    let mut c = Criterion::default().configure_from_args();
    decode(&mut c, &data);
    encode(&mut c, &data);
    c.final_summary();
}
