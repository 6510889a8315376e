//! Archives as a Hive-partitioned dataset: where each archive's records go
//! (`dt=YYYY-MM-DD/`, optionally `hour=HH/`), the deterministic names of
//! the files of a partition, the provenance columns, and the manifest that
//! each converted partition ends with.
//!
//! The manifest is written last, so it marks a partition as complete: it
//! names the archives the partition was converted from (key, size,
//! SHA-256, records), every file and which records of which archive it
//! holds, the settings and the schema. A partition whose manifest describes
//! the same archives, settings and schema as a new run would is up to date;
//! any other is rewritten under the same names, so a re-run never adds a
//! second copy of a record.

use std::io::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use triton_core::key::ArchiveKey;
use triton_core::time::Date;
use triton_core::value::{Record, Value};

use crate::infer::{ColumnType, Field, Schema};

/// The manifest's name inside its partition directory. The leading `_`
/// hides it from Hive, Spark, Athena and Trino, which skip such files.
pub const MANIFEST_NAME: &str = "_triton_manifest.json";

/// The manifest format this version writes.
pub const MANIFEST_FORMAT: u32 = 1;

/// One partition directory of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// The archive's day (its key's date directory).
    pub date: Date,
    /// The hour (UTC) the archive was opened, when partitioning by hour.
    pub hour: Option<u8>,
}

impl Partition {
    /// The partition of an archive: its day and, with `by_hour`, the hour
    /// its name says it was opened. Records carry no time of their own, so
    /// a near-hourly archive opened at 13:58 is all in `hour=13`.
    pub fn of(key: &ArchiveKey, by_hour: bool) -> Partition {
        Partition {
            date: key.date(),
            hour: by_hour.then(|| ((key.timestamp() % 86_400) / 3_600) as u8),
        }
    }

    /// The day's directory, `dt=2024-10-01`.
    pub fn day_dir(&self) -> String {
        format!(
            "dt={:04}-{:02}-{:02}",
            self.date.year(),
            self.date.month(),
            self.date.day()
        )
    }

    /// The directory, `dt=2024-10-01` or `dt=2024-10-01/hour=07`.
    pub fn dir(&self) -> String {
        match self.hour {
            None => self.day_dir(),
            Some(h) => format!("{}/hour={h:02}", self.day_dir()),
        }
    }
}

/// The name of a partition's `n`th file (from 0): `part-00000.parquet`.
pub fn part_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

/// Whether `name` is a file name [`part_name`] gives.
pub fn is_part_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|n| n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The provenance columns of `--with-meta`, first in every row: the
/// archive's key, the record's index in it, and the shard when the
/// archive's sidecar names a single one (archives keep records only, so an
/// archive of several shards cannot say which record came from which).
pub const META_COLUMNS: [&str; 3] = ["_archive", "_index", "_shard"];

/// `schema` with the provenance columns in front, or the name of a record
/// field that already has one of their names.
pub fn with_meta(schema: &Schema) -> Result<Schema, String> {
    if let Some(f) = schema
        .fields
        .iter()
        .find(|f| META_COLUMNS.contains(&f.name.as_str()))
    {
        return Err(f.name.clone());
    }
    let column = |name: &str, ty, nullable| Field {
        name: name.to_owned(),
        ty,
        nullable,
    };
    let mut fields = vec![
        column(META_COLUMNS[0], ColumnType::Utf8, false),
        column(META_COLUMNS[1], ColumnType::UInt64, false),
        column(META_COLUMNS[2], ColumnType::Utf8, true),
    ];
    fields.extend(schema.fields.iter().cloned());
    Ok(Schema { fields })
}

/// Adds the provenance values to a record (see [`META_COLUMNS`]), or
/// names the field of the record that already has one of their names (a
/// schema given by hand may not show it).
pub fn add_meta(
    record: &mut Record,
    archive: &str,
    index: u64,
    shard: Option<&str>,
) -> Result<(), &'static str> {
    if let Some(taken) = META_COLUMNS.iter().find(|c| record.get(c).is_some()) {
        return Err(taken);
    }
    record.push(META_COLUMNS[0], Value::Str(archive.into()));
    record.push(META_COLUMNS[1], Value::UInt(index));
    if let Some(s) = shard {
        record.push(META_COLUMNS[2], Value::Str(s.into()));
    }
    Ok(())
}

/// The SHA-256 (hex) of a schema as it is written: what tells two schemas
/// apart in manifests. What the files do not show is left out: whether a
/// field was absent somewhere (every column is nullable in the files) and
/// why a column is JSON, so that a record lacking a field does not make
/// every partition stale.
pub fn schema_sha256(schema: &Schema) -> String {
    fn written(fields: &[Field]) -> Vec<Field> {
        fields
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                ty: written_type(&f.ty),
                nullable: true,
            })
            .collect()
    }
    fn written_type(ty: &ColumnType) -> ColumnType {
        match ty {
            ColumnType::Json { .. } => ColumnType::Json {
                reason: String::new(),
            },
            ColumnType::List { item } => ColumnType::List {
                item: Box::new(written_type(item)),
            },
            ColumnType::Struct { fields } => ColumnType::Struct {
                fields: written(fields),
            },
            other => other.clone(),
        }
    }
    let mut hasher = Sha256::new();
    let schema = Schema {
        fields: written(&schema.fields),
    };
    // A derived Serialize of plain structs cannot fail.
    if let Ok(json) = serde_json::to_vec(&schema) {
        hasher.update(json);
    }
    hex(hasher)
}

/// A finished hash as lower-case hex.
pub fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How the files of a partition were written: a partition written with
/// other settings is not up to date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `snappy` or `zstd`.
    pub compression: String,
    /// Records per row group.
    pub row_group_size: u64,
    /// A file is closed once it reaches this many bytes.
    pub target_file_size: u64,
    /// Whether rows carry the provenance columns.
    pub with_meta: bool,
}

/// One archive a partition was converted from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceArchive {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 (hex) of its bytes, as read; `None` when it could not be
    /// read to its end.
    pub sha256: Option<String>,
    /// Its records converted.
    pub records: u64,
    /// Why it could not be read to its end (its records before the damage
    /// were converted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// The records of one archive in one file: records `first_index ..
/// first_index + records` of the archive, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSource {
    /// The archive's key.
    pub archive: String,
    /// The index of its first record in the file.
    pub first_index: u64,
    /// How many of its records follow.
    pub records: u64,
}

/// One Parquet file of a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Its name in the partition directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 (hex) of its bytes.
    pub sha256: String,
    /// Rows in it.
    pub records: u64,
    /// Where its rows come from, in order.
    pub sources: Vec<FileSource>,
}

/// What a converted partition holds and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The program that wrote it (`triton 0.1.0`).
    pub writer: String,
    /// The Kinesis stream the archives hold.
    pub stream: String,
    /// The client (store name) that wrote the archives.
    pub client: String,
    /// The partition directory, `dt=2024-10-01[/hour=07]`.
    pub partition: String,
    /// How the files were written.
    pub settings: Settings,
    /// [`schema_sha256`] of the schema.
    pub schema_sha256: String,
    /// The schema of every file of the partition.
    pub schema: Schema,
    /// Rows in all its files.
    pub records: u64,
    /// Its files, in order.
    pub files: Vec<OutputFile>,
    /// The archives it was converted from, in order.
    pub archives: Vec<SourceArchive>,
}

/// Why a partition's existing manifest does not describe what a run
/// would write there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// It holds another stream's records.
    OtherStream(String),
    /// Its archives differ (one added, removed or of another size).
    Archives,
    /// It was written with other settings.
    Settings,
    /// It was written with another schema.
    Schema,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::OtherStream(s) => write!(f, "it holds stream {s}"),
            Stale::Archives => f.write_str("its archives changed"),
            Stale::Settings => f.write_str("it was written with other settings"),
            Stale::Schema => f.write_str("it was written with another schema"),
        }
    }
}

/// Why a manifest cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// It is not a manifest (or a damaged one).
    #[error("not a manifest: {0}")]
    Invalid(String),
    /// A later triton wrote it: this one must not rewrite its partition.
    #[error("manifest format {0} is newer than this triton's {MANIFEST_FORMAT}")]
    Newer(u32),
}

impl Manifest {
    /// Parses a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        // The format first: a newer manifest may not parse as this one.
        let format: Format =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        if format.format > MANIFEST_FORMAT {
            return Err(ManifestError::Newer(format.format));
        }
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Whether this manifest describes converting `archives` (key and
    /// size, in order) of `stream` with `settings` and a schema of
    /// `schema_sha256` (`None`: any schema, when it is not known yet).
    pub fn stale(
        &self,
        stream: &str,
        archives: &[(String, u64)],
        settings: &Settings,
        schema_sha256: Option<&str>,
    ) -> Option<Stale> {
        let same_archives = self.archives.len() == archives.len()
            && self
                .archives
                .iter()
                .zip(archives)
                .all(|(a, (key, size))| a.key == *key && a.size == *size);
        if self.stream != stream {
            Some(Stale::OtherStream(self.stream.clone()))
        } else if !same_archives {
            Some(Stale::Archives)
        } else if self.settings != *settings {
            Some(Stale::Settings)
        } else if schema_sha256.is_some_and(|s| s != self.schema_sha256) {
            Some(Stale::Schema)
        } else {
            None
        }
    }
}

/// A writer that hashes and counts what passes through it: the SHA-256 and
/// size of a file as it is written, without reading it again.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, the SHA-256 (hex) and the bytes written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(self.hasher), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_as_hive_expects() {
        let key = ArchiveKey::parse("20241001/s-c-1727794799.tri").unwrap();
        assert_eq!(Partition::of(&key, false).dir(), "dt=2024-10-01");
        // 1727794799 is 2024-10-01 14:59:59 UTC.
        assert_eq!(Partition::of(&key, true).dir(), "dt=2024-10-01/hour=14");
        assert_eq!(part_name(3), "part-00003.parquet");
        assert!(is_part_name(&part_name(123_456)));
        for other in [
            "part-1.parquet",
            "part-0000a.parquet",
            "x.parquet",
            "part-00001.json",
        ] {
            assert!(!is_part_name(other), "{other}");
        }
    }

    #[test]
    fn the_schema_hash_ignores_what_the_files_do_not_show() {
        let field = |nullable, reason: &str| Schema {
            fields: vec![Field {
                name: "m".into(),
                ty: ColumnType::Struct {
                    fields: vec![Field {
                        name: "j".into(),
                        ty: ColumnType::Json {
                            reason: reason.into(),
                        },
                        nullable,
                    }],
                },
                nullable,
            }],
        };
        assert_eq!(
            schema_sha256(&field(true, "a")),
            schema_sha256(&field(false, "b"))
        );
        let mut other = field(true, "a");
        other.fields[0].name = "n".into();
        assert_ne!(schema_sha256(&other), schema_sha256(&field(true, "a")));
    }

    #[test]
    fn provenance_columns_come_first_and_refuse_a_field_of_their_name() {
        let schema = Schema {
            fields: vec![Field {
                name: "a".into(),
                ty: ColumnType::Int64,
                nullable: false,
            }],
        };
        let names: Vec<String> = with_meta(&schema)
            .unwrap()
            .fields
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["_archive", "_index", "_shard", "a"]);
        let clash = Schema {
            fields: vec![Field {
                name: "_index".into(),
                ty: ColumnType::Int64,
                nullable: false,
            }],
        };
        assert_eq!(with_meta(&clash).unwrap_err(), "_index");
        let mut record = Record::new();
        record.push("a", 1u64);
        add_meta(&mut record, "k.tri", 7, None).unwrap();
        assert_eq!(record.get("_index"), Some(&Value::UInt(7)));
        assert_eq!(record.get("_shard"), None);
        assert_eq!(
            add_meta(&mut record, "k.tri", 8, Some("s")),
            Err("_archive")
        );
    }

    fn manifest() -> Manifest {
        let schema = Schema { fields: vec![] };
        Manifest {
            format: MANIFEST_FORMAT,
            writer: "triton test".into(),
            stream: "s".into(),
            client: "c".into(),
            partition: "dt=2024-10-01".into(),
            settings: Settings {
                compression: "snappy".into(),
                row_group_size: 10,
                target_file_size: 100,
                with_meta: false,
            },
            schema_sha256: schema_sha256(&schema),
            schema,
            records: 1,
            files: vec![],
            archives: vec![SourceArchive {
                key: "20241001/s-c-1.tri".into(),
                size: 7,
                sha256: None,
                records: 1,
                damaged: None,
            }],
        }
    }

    #[test]
    fn a_manifest_is_stale_when_anything_it_was_made_from_differs() {
        let m = manifest();
        let archives = vec![("20241001/s-c-1.tri".to_string(), 7)];
        let sha = m.schema_sha256.clone();
        assert_eq!(m.stale("s", &archives, &m.settings, Some(&sha)), None);
        assert_eq!(m.stale("s", &archives, &m.settings, None), None);
        assert_eq!(
            m.stale("t", &archives, &m.settings, None),
            Some(Stale::OtherStream("s".into()))
        );
        let grown = vec![archives[0].clone(), ("20241001/s-c-2.tri".into(), 1)];
        assert_eq!(
            m.stale("s", &grown, &m.settings, None),
            Some(Stale::Archives)
        );
        let resized = vec![("20241001/s-c-1.tri".to_string(), 8)];
        assert_eq!(
            m.stale("s", &resized, &m.settings, None),
            Some(Stale::Archives)
        );
        let mut other = m.settings.clone();
        other.with_meta = true;
        assert_eq!(m.stale("s", &archives, &other, None), Some(Stale::Settings));
        assert_eq!(
            m.stale("s", &archives, &m.settings, Some("0")),
            Some(Stale::Schema)
        );
        let back = Manifest::parse(&m.to_json()).unwrap();
        assert_eq!(back, m);
        let mut newer = m;
        newer.format = MANIFEST_FORMAT + 1;
        assert_eq!(
            Manifest::parse(&newer.to_json()),
            Err(ManifestError::Newer(MANIFEST_FORMAT + 1))
        );
        assert!(matches!(
            Manifest::parse(b"{\"format\": 1}"),
            Err(ManifestError::Invalid(_))
        ));
    }
}
