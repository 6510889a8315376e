//! The cost of de-aggregation against plain records, in one run:
//! 200,000 user records of 100 bytes (10 partition keys), handed over as
//! plain records (the floor: each record's data copied out, as a reader
//! does when it takes a record) and as aggregates of the default 51,200
//! bytes; and the cost of aggregating them.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use triton_kpl::{deaggregate, Aggregator, Limits, UserRecord};

const RECORDS: usize = 200_000;

fn users() -> Vec<UserRecord> {
    (0..RECORDS)
        .map(|i| UserRecord {
            partition_key: format!("user-{}", i % 10),
            data: format!("{{\"n\":{i:>10},\"pad\":\"{}\"}}", "x".repeat(72)).into_bytes(),
            ..UserRecord::default()
        })
        .collect()
}

fn aggregates(users: &[UserRecord]) -> Vec<Vec<u8>> {
    let mut agg = Aggregator::new(Limits::default());
    let mut out = Vec::new();
    for u in users {
        if let Err(u) = agg.try_add(u.clone()) {
            out.extend(agg.finish().map(|a| a.data));
            if agg.try_add(u).is_err() {
                unreachable!("a 100-byte record fits an empty aggregate");
            }
        }
    }
    out.extend(agg.finish().map(|a| a.data));
    out
}

fn bench(c: &mut Criterion) {
    let users = users();
    let plain: Vec<Vec<u8>> = users.iter().map(|u| u.data.clone()).collect();
    let packed = aggregates(&users);
    let bytes: usize = plain.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("plain_floor", |b| {
        b.iter(|| {
            let mut n = 0;
            for p in &plain {
                // What a reader does per plain record: check for the magic, take the data.
                if !triton_kpl::is_aggregated(p) {
                    n += std::hint::black_box(p.clone()).len();
                }
            }
            n
        })
    });
    // The digest check alone, the part of de-aggregation no decoder avoids.
    group.bench_function("md5_only", |b| {
        use md5::{Digest, Md5};
        b.iter(|| {
            packed
                .iter()
                .map(|a| Md5::digest(&a[4..a.len() - 16])[0] as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("deaggregate", |b| {
        b.iter(|| {
            let mut n = 0;
            for a in &packed {
                let Ok(Some(users)) = deaggregate(a) else {
                    unreachable!("built above")
                };
                n += users.len();
            }
            assert_eq!(n, RECORDS);
            n
        })
    });
    group.finish();
    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("aggregate", |b| b.iter(|| aggregates(&users).len()));
    group.finish();
    eprintln!(
        "{} user records of {} bytes in {} aggregates",
        RECORDS,
        bytes / RECORDS,
        packed.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
