//! `triton convert --stream S --bucket B --start-date D --to DEST`: a
//! stream's archives as a Hive-partitioned Parquet dataset, one schema for
//! every file of the run, each partition ending with its manifest.
//!
//! ```text
//!  list archives ─► partitions ─► survey DEST (manifests, parts, conflicts)
//!        │                                    │
//!        └─► pass 1: infer the schema ◄── unless pinned, or all up to date
//!                        │
//!            pass 2, per stale partition: archives ─► PartWriter ─► upload
//!                        parts ─► delete leftovers ─► manifest (last)
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use triton_core::error::Report;
use triton_core::key::validate_client_name;
use triton_core::source::{Position, RecordSource, SourceError};
use triton_parquet::lake::{
    add_meta, is_part_name, schema_sha256, with_meta, ManifestError, OutputFile, SourceArchive,
    MANIFEST_FORMAT, MANIFEST_NAME,
};
use triton_parquet::{Inference, Manifest, Part, PartWriter, Partition, Schema, Settings};
use triton_s3::{
    list_with_sidecars, read_object, read_sidecar, Archive, ArchiveSource, ArchiveStore, ErrorKind,
    Listing, Location, ObjectInfo, PutOptions, ReadOptions, S3Options,
};

use super::{codec_name, report_json_columns, ConvertOptions};
use crate::cmd::common::{list_error, multi_thread_runtime, ArchiveArgs};
use crate::error::{CliError, CliResult};
use crate::progress;

/// What `triton convert --to` was asked.
pub(super) struct Request<'a> {
    pub archives: &'a ArchiveArgs,
    pub client_name: Option<String>,
    pub to: &'a str,
    pub by_hour: bool,
    pub target_file_size: u64,
    pub with_meta: bool,
    pub replace: bool,
    pub dry_run: bool,
    pub options: ConvertOptions,
}

/// A partition to write: its archives, in reading order.
struct Planned {
    partition: Partition,
    archives: Vec<Archive>,
}

/// What is already in a partition's directory of DEST.
#[derive(Default)]
struct Existing {
    manifest: Option<Manifest>,
    /// A manifest that could not be read, and why.
    bad_manifest: Option<String>,
    /// Files named as our parts, by name.
    parts: BTreeMap<String, u64>,
}

/// Why a partition is written, or that it is not.
enum Verdict {
    UpToDate,
    Write(String),
}

/// What the run did.
#[derive(Default)]
struct Totals {
    records: u64,
    files: u64,
    bytes: u64,
    written: u64,
    kept: u64,
    damaged: Vec<String>,
}

impl Totals {
    /// Counts a partition, kept or written.
    fn add(&mut self, m: &Manifest) {
        self.records += m.records;
        self.files += m.files.len() as u64;
        self.bytes += m.files.iter().map(|f| f.size).sum::<u64>();
        for a in &m.archives {
            if let Some(d) = &a.damaged {
                self.damaged.push(format!("{}: {d}", a.key));
            }
        }
    }
}

/// Runs `triton convert --to`.
pub(super) fn run(req: Request<'_>) -> CliResult {
    let stream = req.archives.stream.load()?;
    if let Some(c) = &req.client_name {
        validate_client_name(c).map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    }
    let to = Location::parse(req.to).map_err(|e| CliError::new(format!("--to: {e}")))?;
    let query = req.archives.query(&stream.name, req.client_name.clone());
    let settings = Settings {
        compression: codec_name(req.options.codec).to_owned(),
        row_group_size: req.options.row_group as u64,
        target_file_size: req.target_file_size,
        with_meta: req.with_meta,
    };
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async {
        let store = req.archives.open(&stream, S3Options::default()).await?;
        let bucket_region = req.archives.bucket.bucket_region.as_deref();
        let dest = stream
            .open_store(&to, bucket_region, S3Options::default())
            .await?;
        if !req.dry_run {
            // Before hours of reading, not after (a local DEST is created).
            dest.check_writable().await.map_err(|e| {
                CliError::new(format!("--to {}: {}", dest.url(), Report(&e)))
            })?;
        }
        let listing = progress::spinner("convert");
        listing.set_message(format!(
            "listing the archives from {} to {}",
            query.start, query.end
        ));
        let listed = list_with_sidecars(store.clone(), &query).await;
        listing.finish_and_clear();
        let Listing {
            archives: listed,
            sidecars,
        } = listed.map_err(list_error)?;
        let sidecars: HashSet<String> = sidecars.into_iter().collect();
        if listed.is_empty() {
            eprintln!(
                "convert: no archives of {} from {} to {} in {}: nothing to convert",
                query.stream,
                query.start,
                query.end,
                store.url()
            );
            return Ok(());
        }
        let plan = plan(&listed, req.by_hour);
        let existing = survey(&*dest, &stream.name, &plan, req.by_hour).await?;
        // Each partition's archives as its manifest names them.
        let key_sizes: Vec<Vec<(String, u64)>> = plan
            .iter()
            .map(|p| {
                p.archives
                    .iter()
                    .map(|a| (a.key.to_string(), a.size))
                    .collect()
            })
            .collect();
        // Without a pinned schema it takes reading every archive: skip that
        // when every partition is already converted from these archives,
        // with these settings, under one schema.
        let all_current = !req.replace
            && req.options.schema.is_none()
            && same_schema(&existing)
            && key_sizes.iter().zip(&existing).all(|(keys, e)| {
                matches!(
                    verdict(e, &stream.name, keys, &settings, None),
                    Verdict::UpToDate
                )
            });
        let schema = if all_current {
            existing
                .first()
                .and_then(|e| e.manifest.as_ref())
                .map(|m| m.schema.clone())
                .unwrap_or(Schema { fields: vec![] })
        } else {
            let schema = match &req.options.schema {
                Some(s) => s.clone(),
                None => infer(store.clone(), &listed).await?,
            };
            match req.with_meta {
                true => with_meta(&schema).map_err(|name| {
                    CliError::new(format!(
                        "the records have a field {name:?}, which --with-meta needs for its column: convert without --with-meta"
                    ))
                })?,
                false => schema,
            }
        };
        report_json_columns(&schema);
        let schema_sha = schema_sha256(&schema);
        let mut totals = Totals::default();
        let tmp = TempDir::new()?;
        for ((p, e), keys) in plan.iter().zip(&existing).zip(&key_sizes) {
            let dir = p.partition.dir();
            let verdict = match req.replace {
                true => Verdict::Write("--replace".into()),
                false => verdict(e, &stream.name, keys, &settings, Some(&schema_sha)),
            };
            let why = match verdict {
                Verdict::UpToDate => {
                    totals.kept += 1;
                    if let Some(m) = &e.manifest {
                        totals.add(m);
                    }
                    eprintln!("convert: {dir}: up to date");
                    continue;
                }
                Verdict::Write(why) => why,
            };
            if req.dry_run {
                eprintln!("convert: {dir}: would write ({why})");
                continue;
            }
            eprintln!("convert: {dir}: writing ({why})");
            let m = write_partition(
                store.clone(),
                &*dest,
                p,
                e,
                &stream.name,
                &settings,
                &schema,
                &req.options,
                &sidecars,
                tmp.path(),
            )
            .await?;
            totals.written += 1;
            totals.add(&m);
        }
        if req.dry_run {
            eprintln!(
                "convert: {} archives in {} partitions: {} to write, {} up to date (dry run: nothing written)",
                listed.len(),
                plan.len(),
                plan.len() as u64 - totals.kept,
                totals.kept
            );
            return Ok(());
        }
        eprintln!(
            "convert: {} archives in {} partitions: wrote {}, {} up to date; {} records in {} files ({} bytes) under {} ({} columns)",
            listed.len(),
            plan.len(),
            totals.written,
            totals.kept,
            totals.records,
            totals.files,
            totals.bytes,
            dest.url(),
            schema.fields.len()
        );
        if totals.damaged.is_empty() {
            return Ok(());
        }
        eprintln!(
            "convert: {} damaged archive(s); their records before the damage were converted:",
            totals.damaged.len()
        );
        for d in &totals.damaged {
            eprintln!("  {d}");
        }
        Err(CliError::reported())
    })
}

/// The archives by partition, in order. An archive's day is its key's
/// directory and its hour comes from its timestamp, which go-triton did
/// not keep in step: the same partition may come back after others.
fn plan(listed: &[Archive], by_hour: bool) -> Vec<Planned> {
    let mut partitions: BTreeMap<Partition, Vec<Archive>> = BTreeMap::new();
    for a in listed {
        partitions
            .entry(Partition::of(&a.key, by_hour))
            .or_default()
            .push(a.clone());
    }
    partitions
        .into_iter()
        .map(|(partition, archives)| Planned {
            partition,
            archives,
        })
        .collect()
}

/// Reads what each partition's directory holds. A day converted by hour
/// and by day at once would hold every record twice for a glob over DEST,
/// and files triton did not write would be read with ours: both refused.
async fn survey(
    dest: &dyn ArchiveStore,
    stream: &str,
    plan: &[Planned],
    by_hour: bool,
) -> Result<Vec<Existing>, CliError> {
    let mut days: HashMap<String, Vec<ObjectInfo>> = HashMap::new();
    let mut out = Vec::with_capacity(plan.len());
    for p in plan {
        let day = p.partition.day_dir();
        if !days.contains_key(&day) {
            let listed = match dest.list(&format!("{day}/")).await {
                Ok(listed) => listed,
                // A local DEST not made yet (--dry-run) holds nothing.
                Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(CliError::new(format!(
                        "listing {}/{day}/: {}",
                        dest.url(),
                        Report(&e)
                    )))
                }
            };
            let other_layout = listed.iter().find(|o| {
                let rest = o.key.strip_prefix(&format!("{day}/")).unwrap_or_default();
                let hourly = rest.starts_with("hour=");
                let ours = rest.ends_with(MANIFEST_NAME)
                    || rest.rsplit('/').next().is_some_and(is_part_name);
                hourly != by_hour && ours
            });
            if let Some(o) = other_layout {
                let (have, want) = match by_hour {
                    true => ("by day", "by hour"),
                    false => ("by hour", "by day"),
                };
                return Err(CliError::new(format!(
                    "{}/{} shows {day} converted {have}; converting it {want} would hold its records twice: use the same partitioning, or another --to",
                    dest.url(),
                    o.key
                )));
            }
            days.insert(day.clone(), listed);
        }
        let dir = format!("{}/", p.partition.dir());
        let mut existing = Existing::default();
        for o in days[&day].iter().filter(|o| o.key.starts_with(&dir)) {
            let name = &o.key[dir.len()..];
            if name == MANIFEST_NAME {
                let refuse = |why: String| {
                    CliError::new(format!(
                        "{}/{}: {why}; this run must not rewrite its partition: choose another --to",
                        dest.url(),
                        o.key
                    ))
                };
                match read_manifest(dest, &o.key).await {
                    Ok(m) if m.stream != stream => {
                        return Err(refuse(format!("a partition of stream {}", m.stream)))
                    }
                    Ok(m) => existing.manifest = Some(m),
                    Err(e @ ManifestError::Newer(_)) => return Err(refuse(e.to_string())),
                    Err(e) => existing.bad_manifest = Some(e.to_string()),
                }
            } else if is_part_name(name) {
                existing.parts.insert(name.to_owned(), o.size);
            } else if name.ends_with(".parquet") {
                return Err(CliError::new(format!(
                    "{}/{}: a Parquet file triton did not write, where it writes {}: a glob over the partition would read both; move it, or choose another --to",
                    dest.url(),
                    o.key,
                    p.partition.dir()
                )));
            }
        }
        out.push(existing);
    }
    Ok(out)
}

/// A partition's manifest, or what is wrong with it.
pub(super) async fn read_manifest(
    dest: &dyn ArchiveStore,
    key: &str,
) -> Result<Manifest, ManifestError> {
    match read_object(dest, key).await {
        Ok(Some(bytes)) => Manifest::parse(&bytes),
        Ok(None) => Err(ManifestError::Invalid("gone while it was read".into())),
        Err(e) => Err(ManifestError::Invalid(Report(&e).to_string())),
    }
}

/// Whether every manifest there is names one schema.
fn same_schema(existing: &[Existing]) -> bool {
    let mut shas = existing
        .iter()
        .filter_map(|e| e.manifest.as_ref().map(|m| &m.schema_sha256));
    match shas.next() {
        None => true,
        Some(first) => shas.all(|s| s == first),
    }
}

/// Whether a partition holds what converting `archives` would write.
fn verdict(
    e: &Existing,
    stream: &str,
    archives: &[(String, u64)],
    settings: &Settings,
    schema_sha: Option<&str>,
) -> Verdict {
    let Some(m) = &e.manifest else {
        return Verdict::Write(match (&e.bad_manifest, e.parts.is_empty()) {
            (Some(why), _) => format!("its manifest cannot be read: {why}"),
            (None, true) => "new".into(),
            (None, false) => "an earlier run did not finish it".into(),
        });
    };
    if let Some(stale) = m.stale(stream, archives, settings, schema_sha) {
        return Verdict::Write(stale.to_string());
    }
    let missing = m
        .files
        .iter()
        .find(|f| e.parts.get(&f.name) != Some(&f.size));
    if let Some(f) = missing {
        return Verdict::Write(format!("{} is missing or of another size", f.name));
    }
    // A glob reads every part there, listed or not.
    match e
        .parts
        .keys()
        .find(|n| !m.files.iter().any(|f| &f.name == *n))
    {
        Some(extra) => Verdict::Write(format!("{extra} is not in its manifest")),
        None => Verdict::UpToDate,
    }
}

/// Pass 1: the schema of every record of the archives.
async fn infer(store: Arc<dyn ArchiveStore>, archives: &[Archive]) -> Result<Schema, CliError> {
    let bar = progress::bytes(archives.iter().map(|a| a.size).sum(), "schema");
    let mut source = ArchiveSource::new(store, archives.to_vec(), ReadOptions::default());
    let mut inference = Inference::new();
    let result = async {
        loop {
            match source.next_batch(4096).await {
                Ok(Some(batch)) => {
                    for r in &batch {
                        inference.add(&decode(r)?);
                    }
                }
                Ok(None) => return Ok(()),
                // Reported by pass 2, which meets the same damage.
                Err(SourceError::Corrupt { .. }) => {}
                Err(e) => return Err(CliError::from(e)),
            }
            let p = source.progress();
            bar.set_position(p.bytes_read);
            bar.set_message(format!(
                "inferring the schema: archives {}/{}, {} records",
                p.archives_done,
                p.archives_total,
                inference.records()
            ));
        }
    }
    .await;
    source.close().await;
    bar.finish_and_clear();
    result?;
    Ok(inference.schema())
}

fn decode(r: &triton_core::source::SourceRecord) -> Result<triton_core::value::Record, CliError> {
    // The decoder validated every record; report rather than trust it.
    r.record()
        .map_err(|e| CliError::new(format!("{} {}: {e}", r.source, r.position)))
}

/// Pass 2 for one partition: its files, then the removal of files of an
/// earlier conversion that this one does not replace, then its manifest.
#[allow(clippy::too_many_arguments)]
async fn write_partition(
    store: Arc<dyn ArchiveStore>,
    dest: &dyn ArchiveStore,
    p: &Planned,
    existing: &Existing,
    stream: &str,
    settings: &Settings,
    schema: &Schema,
    options: &ConvertOptions,
    sidecars: &HashSet<String>,
    tmp: &Path,
) -> Result<Manifest, CliError> {
    let dir = p.partition.dir();
    let manifest_key = format!("{dir}/{MANIFEST_NAME}");
    // Until the new manifest is written, the partition reads as unfinished.
    if existing.manifest.is_some() || existing.bad_manifest.is_some() {
        dest.delete(&manifest_key).await.map_err(|e| {
            CliError::new(format!(
                "deleting {}/{manifest_key}: {}",
                dest.url(),
                Report(&e)
            ))
        })?;
    }
    let shards = match settings.with_meta {
        true => single_shards(&*store, &p.archives, sidecars).await?,
        false => HashMap::new(),
    };
    let bar = progress::bytes(p.archives.iter().map(|a| a.size).sum(), "convert");
    let read = ReadOptions {
        sha256: true,
        ..ReadOptions::default()
    };
    let mut source = ArchiveSource::new(store, p.archives.clone(), read);
    let mut writer = PartWriter::new(
        tmp,
        schema.clone(),
        options.codec,
        options.row_group,
        settings.target_file_size,
    )
    .reject_unknown_fields(options.schema.is_some());
    let mut files: Vec<OutputFile> = Vec::new();
    let mut records: HashMap<Arc<str>, u64> = HashMap::new();
    let mut damaged: HashMap<String, String> = HashMap::new();
    let mut shas: HashMap<String, String> = HashMap::new();
    let result = async {
        loop {
            let batch = match source.next_batch(4096).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(SourceError::Corrupt {
                    source_id, detail, ..
                }) => {
                    bar.suspend(|| eprintln!("convert: {source_id}: {detail}"));
                    damaged.insert(source_id, detail);
                    continue;
                }
                Err(e) => return Err(CliError::from(e)),
            };
            for r in batch {
                let mut record = decode(&r)?;
                let index = match r.position {
                    Position::Index(i) => i,
                    other => {
                        return Err(CliError::new(format!(
                            "{}: position {other} is not a record index",
                            r.source
                        )))
                    }
                };
                if settings.with_meta {
                    let shard = shards.get(&*r.source).and_then(|s| s.as_deref());
                    add_meta(&mut record, &r.source, index, shard).map_err(|name| {
                        CliError::new(format!(
                            "{} record {index}: a field {name:?}, which --with-meta needs for its column: convert without --with-meta",
                            r.source
                        ))
                    })?;
                }
                *records.entry(r.source.clone()).or_default() += 1;
                if let Some(part) = writer
                    .push(record, &r.source, index)
                    .map_err(|e| CliError::chain(&e))?
                {
                    files.push(upload(dest, &dir, part).await?);
                }
            }
            let p = source.progress();
            bar.set_position(p.bytes_read);
            bar.set_message(format!(
                "{dir}: archives {}/{}",
                p.archives_done, p.archives_total
            ));
        }
        for a in &p.archives {
            let key = a.key.to_string();
            if let Some(sha) = source.take_sha256(&key) {
                shas.insert(key, sha);
            }
        }
        if let Some(part) = writer.finish().map_err(|e| CliError::chain(&e))? {
            files.push(upload(dest, &dir, part).await?);
        }
        Ok(())
    }
    .await;
    source.close().await;
    bar.finish_and_clear();
    result?;
    // Parts of an earlier conversion that wrote more files than this one.
    for name in existing.parts.keys() {
        if !files.iter().any(|f| &f.name == name) {
            let key = format!("{dir}/{name}");
            dest.delete(&key).await.map_err(|e| {
                CliError::new(format!("deleting {}/{key}: {}", dest.url(), Report(&e)))
            })?;
        }
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        writer: concat!("triton ", env!("CARGO_PKG_VERSION")).to_owned(),
        stream: stream.to_owned(),
        client: p
            .archives
            .first()
            .map(|a| a.key.client().to_owned())
            .unwrap_or_default(),
        partition: dir.clone(),
        settings: settings.clone(),
        schema_sha256: schema_sha256(schema),
        schema: schema.clone(),
        records: files.iter().map(|f| f.records).sum(),
        files,
        archives: p
            .archives
            .iter()
            .map(|a| {
                let key = a.key.to_string();
                let damage = damaged.remove(&key);
                SourceArchive {
                    sha256: match damage {
                        None => shas.remove(&key),
                        Some(_) => None,
                    },
                    records: records.get(key.as_str()).copied().unwrap_or(0),
                    damaged: damage,
                    size: a.size,
                    key,
                }
            })
            .collect(),
    };
    let put = PutOptions {
        create_only: false,
        content_type: "application/json".into(),
    };
    dest.put_bytes(&manifest_key, manifest.to_json(), &put)
        .await
        .map_err(|e| {
            CliError::new(format!(
                "writing {}/{manifest_key}: {}",
                dest.url(),
                Report(&e)
            ))
        })?;
    Ok(manifest)
}

/// Moves a finished file to its partition.
async fn upload(dest: &dyn ArchiveStore, dir: &str, part: Part) -> Result<OutputFile, CliError> {
    let key = format!("{dir}/{}", part.file.name);
    let put = PutOptions {
        create_only: false,
        content_type: "application/vnd.apache.parquet".into(),
    };
    let result = dest.put_file(&key, &part.path, &put).await;
    let _ = std::fs::remove_file(&part.path);
    result.map_err(|e| CliError::new(format!("writing {}/{key}: {}", dest.url(), Report(&e))))?;
    Ok(part.file)
}

/// For `--with-meta`: each archive's shard, when its sidecar names exactly
/// one (a fleet worker's archive often is of one shard; go-triton's
/// archives have no sidecar).
async fn single_shards(
    store: &dyn ArchiveStore,
    archives: &[Archive],
    sidecars: &HashSet<String>,
) -> Result<HashMap<String, Option<String>>, CliError> {
    let mut out = HashMap::new();
    for a in archives {
        let key = a.key.to_string();
        let shard = match sidecars.contains(&key) {
            false => None,
            true => match read_sidecar(store, &key).await {
                Ok(Some(m)) if m.shards.len() == 1 => m.shards.into_keys().next(),
                Ok(_) => None,
                Err(e) => {
                    return Err(CliError::new(format!(
                        "{key}: its sidecar, for --with-meta's _shard: {}",
                        Report(&e)
                    )))
                }
            },
        };
        out.insert(key, shard);
    }
    Ok(out)
}

/// A private local directory for files before their upload, removed with
/// whatever is left in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("triton-convert-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        // Not create_dir_all: a directory already there is not ours.
        std::fs::create_dir(&path).map_err(|e| CliError::io(path.display(), e))?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
