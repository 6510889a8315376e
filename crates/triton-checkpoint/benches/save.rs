//! What a checkpoint costs: one `save`, and one `save_many` of 100 shards
//! (one upload of `triton store` covering 100 shards), on SQLite and
//! PostgreSQL, each beside `last` (one indexed read: the database round
//! trip) on the same backend in the same run.
//!
//! PostgreSQL: `TRITON_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the benchmark creates and
//! drops its own database.
//!
//! ```text
//! cargo bench -p triton-checkpoint --bench save
//! ```

use std::time::Duration;

use criterion::Criterion;

mod support;
use triton_checkpoint::SqlCheckpoints;
use triton_core::checkpoint::{conformance::sequence, Checkpoint, CheckpointStore};

fn batch(n: usize, round: u64) -> Vec<Checkpoint> {
    (0..n)
        .map(|i| Checkpoint {
            client: "bench".into(),
            stream: "stream".into(),
            shard: format!("shardId-{i:012}"),
            sequence: sequence(round),
        })
        .collect()
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &SqlCheckpoints) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    rt.block_on(store.save_many(&batch(100, 0))).expect("seed");
    group.bench_function("last", |b| {
        b.iter(|| {
            rt.block_on(store.last("bench", "stream", "shardId-000000000000"))
                .expect("last")
        })
    });
    let one = batch(1, 1);
    group.bench_function("save", |b| {
        b.iter(|| rt.block_on(store.save(&one[0])).expect("save"))
    });
    let many = batch(100, 2);
    group.bench_function("save_many_100", |b| {
        b.iter(|| rt.block_on(store.save_many(&many)).expect("save_many"))
    });
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();

    let dir = std::env::temp_dir().join(format!("triton-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let sqlite = rt
        .block_on(SqlCheckpoints::open(&url))
        .expect("open sqlite");
    bench(&mut c, &rt, "sqlite", &sqlite);
    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);

    let database = support::TempDatabase::create(&rt, "triton_bench");
    let pg = rt
        .block_on(SqlCheckpoints::open(&database.url))
        .expect("open postgres");
    bench(&mut c, &rt, "postgres", &pg);
    drop(pg);
    database.drop_db(&rt);
    c.final_summary();
}
