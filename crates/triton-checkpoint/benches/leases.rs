//! What leases cost the database: a simulated fleet of 10 workers on a
//! stream of 1,000 shards (100 leases each) in PostgreSQL. Per worker and
//! renewal interval, a worker renews its leases (`renew`: one statement for
//! all of them, plus its heartbeat) and reads the lease table (`leases`:
//! 1,000 rows, for its share); a fenced commit (`complete_intent_fenced`
//! of an archive of its 100 shards) is beside the unfenced one
//! (`complete_intent`), and `last` (one indexed read: the round trip) is
//! the baseline of the same run.
//!
//! ```text
//! cargo bench -p triton-checkpoint --bench leases
//! ```

use std::time::Duration;

use criterion::Criterion;

mod support;
use triton_checkpoint::SqlCheckpoints;
use triton_core::checkpoint::{
    conformance::sequence, Checkpoint, CheckpointStore, IntentStore, UploadIntent,
};
use triton_core::lease::{Fence, Held, LeaseScope, LeaseStore, ShardSpec};

const SHARDS: usize = 1000;
const WORKERS: usize = 10;

fn shard(i: usize) -> String {
    format!("shardId-{i:012}")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    let database = support::TempDatabase::create(&rt, "triton_bench_leases");
    let db = rt
        .block_on(SqlCheckpoints::open(&database.url))
        .expect("open postgres");
    let scope = LeaseScope {
        client: "bench".into(),
        stream: "stream".into(),
    };
    let long = Duration::from_secs(3600);
    let specs: Vec<ShardSpec> = (0..SHARDS)
        .map(|i| ShardSpec {
            shard: shard(i),
            parents: Vec::new(),
        })
        .collect();
    let held: Vec<Vec<Held>> = rt.block_on(async {
        db.add_shards(&scope, &specs).await.expect("add");
        let mut held = Vec::new();
        for w in 0..WORKERS {
            let worker = format!("w{w}");
            db.renew(&scope, &worker, &[], &[], long)
                .await
                .expect("join");
            let mine: Vec<String> = (w * 100..(w + 1) * 100).map(shard).collect();
            let got = db
                .acquire(&scope, &worker, &mine, 100, long)
                .await
                .expect("acquire");
            assert_eq!(got.len(), 100);
            held.push(got);
        }
        held
    });
    let mut group = c.benchmark_group("postgres_1000_shards_10_workers");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("last", |b| {
        b.iter(|| {
            rt.block_on(db.last("bench", "stream", &shard(0)))
                .expect("last")
        })
    });
    group.bench_function("renew_100", |b| {
        b.iter(|| {
            rt.block_on(db.renew(&scope, "w0", &held[0], &[], long))
                .expect("renew")
        })
    });
    group.bench_function("leases_table_1000", |b| {
        b.iter(|| rt.block_on(db.leases(&scope)).expect("leases"))
    });
    let checkpoints: Vec<Checkpoint> = held[0]
        .iter()
        .map(|h| Checkpoint {
            client: "bench".into(),
            stream: "stream".into(),
            shard: h.shard.clone(),
            sequence: sequence(7),
        })
        .collect();
    let intent = UploadIntent {
        client: "bench".into(),
        stream: "stream".into(),
        key: "20261202/stream-bench-1.tri".into(),
        document: "{}".into(),
    };
    let fence = Fence::new("w0", &held[0]);
    group.bench_function("record_and_complete_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                db.record_intent(&intent, None).await.expect("record");
                db.complete_intent(intent.id(), &checkpoints)
                    .await
                    .expect("complete")
            })
        })
    });
    group.bench_function("record_and_complete_100_fenced", |b| {
        b.iter(|| {
            rt.block_on(async {
                db.record_intent_fenced(&intent, None, &fence)
                    .await
                    .expect("record");
                db.complete_intent_fenced(intent.id(), &checkpoints, &fence)
                    .await
                    .expect("complete")
            })
        })
    });
    group.finish();
    drop(db);
    database.drop_db(&rt);
    c.final_summary();
}
