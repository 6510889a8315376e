//! `triton convert` of a generated day of a million records (24 archives
//! of every kind of value: triton_tests::day), beside `triton decode` of
//! the same archives to JSON lines, in the same run; then the sizes of the
//! .tri, JSON lines and Parquet (Snappy, Zstd), and DuckDB's time for one
//! GROUP BY over the Parquet dataset and over the JSON lines (best of 5).
//!
//! Run: `scripts/setup-python; cargo bench -p triton-cli --bench convert`

use std::path::Path;
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ARCHIVES: u64 = 24;
const PER_ARCHIVE: u64 = 41_667;

fn triton(args: &[String], config: &Path, stdout: Stdio) {
    let status = Command::new(env!("CARGO_BIN_EXE_triton"))
        .env("TRITON_CONFIG", config)
        .env_remove("TRITON_CLIENT")
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "triton {args:?}");
}

fn size_of(path: &Path) -> u64 {
    if path.is_file() {
        return std::fs::metadata(path).unwrap().len();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| size_of(&e.unwrap().path()))
        .sum()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("triton-bench-convert-{}", std::process::id()));
    let root = dir.join("archive");
    let paths = triton_tests::day::write_day(&root, "bench-events", ARCHIVES, PER_ARCHIVE);
    let config = dir.join("triton.yaml");
    std::fs::write(
        &config,
        "events:\n  name: bench-events\n  region: us-east-1\n",
    )
    .unwrap();
    let records = ARCHIVES * PER_ARCHIVE;
    let tri: u64 = paths.iter().map(|p| size_of(p)).sum();

    let mut decode = strings(&["decode"]);
    decode.extend(paths.iter().map(|p| p.display().to_string()));
    let lake = |name: &str, codec: &str| {
        strings(&[
            "convert",
            "--stream",
            "events",
            "--bucket",
            root.to_str().unwrap(),
            "--start-date",
            "20241030",
            "--to",
            dir.join(name).to_str().unwrap(),
            "--replace",
            "--compression",
            codec,
        ])
    };
    let snappy = lake("lake-snappy", "snappy");
    let zstd = lake("lake-zstd", "zstd");
    // The schema pinned: one pass instead of two.
    triton(
        &[strings(&["schema"]), decode[1..].to_vec()].concat(),
        &config,
        Stdio::from(std::fs::File::create(dir.join("schema.json")).unwrap()),
    );
    let pinned = [
        lake("lake-pinned", "snappy"),
        strings(&["--schema", dir.join("schema.json").to_str().unwrap()]),
    ]
    .concat();

    let mut g = c.benchmark_group("convert_1M_records");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    g.bench_function("decode_to_json_baseline", |b| {
        b.iter(|| triton(&decode, &config, Stdio::null()))
    });
    g.bench_function("convert_dataset_snappy", |b| {
        b.iter(|| triton(&snappy, &config, Stdio::null()))
    });
    g.bench_function("convert_dataset_zstd", |b| {
        b.iter(|| triton(&zstd, &config, Stdio::null()))
    });
    g.bench_function("convert_dataset_schema_pinned", |b| {
        b.iter(|| triton(&pinned, &config, Stdio::null()))
    });
    g.finish();

    let jsonl = dir.join("day.jsonl");
    triton(
        &decode,
        &config,
        Stdio::from(std::fs::File::create(&jsonl).unwrap()),
    );
    let mb = |b: u64| b as f64 / 1e6;
    let (json, parquet, parquet_zstd) = (
        size_of(&jsonl),
        size_of(&dir.join("lake-snappy")),
        size_of(&dir.join("lake-zstd")),
    );
    println!(
        "{records} records: .tri {:.1} MB, JSON lines {:.1} MB, Parquet snappy {:.1} MB ({:.2}x .tri, {:.3}x JSON), zstd {:.1} MB ({:.2}x .tri, {:.3}x JSON)",
        mb(tri), mb(json), mb(parquet), parquet as f64 / tri as f64, parquet as f64 / json as f64,
        mb(parquet_zstd), parquet_zstd as f64 / tri as f64, parquet_zstd as f64 / json as f64
    );
    let python = std::env::var("TRITON_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string()
    });
    let script = r#"
import sys, time, duckdb
lake, jsonl = sys.argv[1:3]
def best(sql):
    times = []
    for _ in range(5):
        t = time.perf_counter(); rows = duckdb.sql(sql).fetchall(); times.append(time.perf_counter() - t)
    return min(times), rows
q = "SELECT event, count(*), sum(delta) FROM {} GROUP BY 1 ORDER BY 1"
p, pr = best(q.format(f"read_parquet('{lake}/**/*.parquet', hive_partitioning = 1)"))
j, jr = best(q.format(f"read_json('{jsonl}', format = 'newline_delimited')"))
assert pr == jr, (pr, jr)
print(f"DuckDB GROUP BY event: Parquet {p*1000:.0f} ms, JSON lines {j*1000:.0f} ms ({j/p:.0f}x); same {len(pr)} groups")
"#;
    let status = Command::new(python)
        .args([
            "-c",
            script,
            dir.join("lake-snappy").to_str().unwrap(),
            jsonl.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the DuckDB comparison failed (scripts/setup-python installs duckdb)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
