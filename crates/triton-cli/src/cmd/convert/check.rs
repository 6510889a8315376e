//! `triton audit --converted DEST`: whether a dataset that `triton convert
//! --to` wrote holds every archive of the range, as it is now, from the
//! partitions' manifests.

use std::collections::{HashMap, HashSet};

use super::dataset::read_manifest;
use serde::Serialize;
use triton_core::error::Report;
use triton_core::time::{self, Date};
use triton_parquet::lake::{Partition, SourceArchive, MANIFEST_NAME};
use triton_s3::{read_sidecar, ArchiveStore, Listing};

use crate::error::CliError;

/// A way the dataset does not hold the archives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conversion {
    /// No manifest names the archive.
    NotConverted {
        /// The archive.
        archive: String,
    },
    /// A manifest names the archive, but another version of it: other
    /// size, a SHA-256 or a number of records its sidecar does not give.
    Changed {
        /// The archive.
        archive: String,
        /// Where it was converted.
        partition: String,
        /// What differs.
        detail: String,
    },
    /// The archive was damaged when it was converted: only its records
    /// before the damage are in the dataset.
    Partial {
        /// The archive.
        archive: String,
        /// Where it was converted.
        partition: String,
        /// Records converted.
        records: u64,
        /// The damage.
        detail: String,
    },
    /// A manifest names an archive of the range that is no longer in the
    /// bucket: the dataset holds records the archives do not.
    Gone {
        /// The archive.
        archive: String,
        /// Where it was converted.
        partition: String,
    },
    /// An archive two manifests name: its records are in the dataset twice.
    Twice {
        /// The archive.
        archive: String,
        /// The partitions that hold it.
        partitions: Vec<String>,
    },
    /// A Parquet file no manifest names: a glob reads it beside the rest.
    ExtraFile {
        /// The file's key under DEST.
        file: String,
    },
    /// The archive's sidecar could not be read, so its conversion could
    /// not be held to it.
    Unverified {
        /// The archive.
        archive: String,
        /// Why.
        detail: String,
    },
    /// A file a manifest names is missing, or of another size.
    MissingFile {
        /// The file's key under DEST.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// A manifest that cannot be read, or is of another stream.
    BadManifest {
        /// Its key under DEST.
        manifest: String,
        /// Why.
        detail: String,
    },
}

/// What the dataset holds of the range's archives.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConversionReport {
    /// Where the dataset is.
    pub dest: String,
    /// Archives in the range.
    pub archives: u64,
    /// Of them, converted as they are.
    pub converted: u64,
    /// Rows in the partitions of the range.
    pub records: u64,
    /// What is wrong.
    pub findings: Vec<Conversion>,
}

impl ConversionReport {
    /// Nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The report as lines.
    pub fn print_text(&self) {
        println!(
            "converted: {} of {} archives ({} records) under {}",
            self.converted, self.archives, self.records, self.dest
        );
        for f in &self.findings {
            match f {
                Conversion::NotConverted { archive } => println!("NOT CONVERTED {archive}"),
                Conversion::Changed {
                    archive,
                    partition,
                    detail,
                } => println!("CONVERTED OTHER {archive} in {partition}: {detail}"),
                Conversion::Partial {
                    archive,
                    partition,
                    records,
                    detail,
                } => println!(
                    "PARTLY CONVERTED {archive} in {partition}: {records} records, then damaged: {detail}"
                ),
                Conversion::Gone { archive, partition } => println!(
                    "CONVERTED GONE {archive} in {partition}: not among the range's archives (gone, or another client's)"
                ),
                Conversion::Twice {
                    archive,
                    partitions,
                } => println!(
                    "CONVERTED TWICE {archive} in {}: its records are there twice",
                    partitions.join(" and ")
                ),
                Conversion::ExtraFile { file } => {
                    println!("EXTRA FILE {file}: no manifest names it, a glob reads it")
                }
                Conversion::Unverified { archive, detail } => {
                    println!("UNVERIFIED {archive}: {detail}")
                }
                Conversion::MissingFile { file, detail } => {
                    println!("MISSING FILE {file}: {detail}")
                }
                Conversion::BadManifest { manifest, detail } => {
                    println!("BAD MANIFEST {manifest}: {detail}")
                }
            }
        }
    }
}

/// Compares the archives of `listing` (of `stream`, days `start` to
/// `end`) with the manifests under `dest`; the sidecars in `store` give
/// the SHA-256 and record counts to hold the manifests to.
pub async fn check_converted(
    store: &dyn ArchiveStore,
    dest: &dyn ArchiveStore,
    stream: &str,
    (start, end): (Date, Date),
    listing: &Listing,
) -> Result<ConversionReport, CliError> {
    let mut report = ConversionReport {
        dest: dest.url(),
        archives: listing.archives.len() as u64,
        ..ConversionReport::default()
    };
    let failed = |what: String, e: &dyn std::error::Error| {
        CliError::new(format!("{what}: {}", Report(e))).with_code(2)
    };
    // Each archive the manifests name: its partition and what it says.
    let mut converted: HashMap<String, (String, SourceArchive)> = HashMap::new();
    // Archives two manifests name, and the two partitions.
    let mut twice: Vec<(String, String, String)> = Vec::new();
    for date in time::days_inclusive(start, end) {
        let day = Partition { date, hour: None }.day_dir();
        let objects = match dest.list(&format!("{day}/")).await {
            Ok(o) => o,
            Err(e) if e.kind == triton_s3::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(failed(format!("listing {}/{day}/", dest.url()), &e)),
        };
        let sizes: HashMap<&str, u64> = objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
        let mut listed: HashSet<String> = HashSet::new();
        for o in &objects {
            let Some((dir, MANIFEST_NAME)) = o.key.rsplit_once('/') else {
                continue;
            };
            let manifest = match read_manifest(dest, &o.key).await {
                Ok(m) if m.stream == stream => Ok(m),
                Ok(m) => Err(format!("of stream {}", m.stream)),
                Err(e) => Err(e.to_string()),
            };
            let manifest = match manifest {
                Ok(m) => m,
                Err(detail) => {
                    report.findings.push(Conversion::BadManifest {
                        manifest: o.key.clone(),
                        detail,
                    });
                    continue;
                }
            };
            report.records += manifest.records;
            for f in &manifest.files {
                let key = format!("{dir}/{}", f.name);
                listed.insert(key.clone());
                match sizes.get(key.as_str()) {
                    Some(&size) if size == f.size => {}
                    found => report.findings.push(Conversion::MissingFile {
                        detail: match found {
                            None => "missing".into(),
                            Some(size) => format!("{size} bytes, its manifest says {}", f.size),
                        },
                        file: key,
                    }),
                }
            }
            for a in manifest.archives {
                let key = a.key.clone();
                if let Some((other, _)) = converted.insert(key.clone(), (dir.to_owned(), a)) {
                    twice.push((key, other, dir.to_owned()));
                }
            }
        }
        for o in &objects {
            if o.key.ends_with(".parquet") && !listed.contains(&o.key) {
                report.findings.push(Conversion::ExtraFile {
                    file: o.key.clone(),
                });
            }
        }
    }
    for (archive, first, second) in twice {
        report.findings.push(Conversion::Twice {
            archive,
            partitions: vec![first, second],
        });
    }
    for archive in &listing.archives {
        let key = archive.key.to_string();
        let Some((partition, got)) = converted.remove(&key) else {
            report
                .findings
                .push(Conversion::NotConverted { archive: key });
            continue;
        };
        let changed = |detail: String| Conversion::Changed {
            archive: key.clone(),
            partition: partition.clone(),
            detail,
        };
        if got.size != archive.size {
            report.findings.push(changed(format!(
                "converted from {} bytes, the archive has {}",
                got.size, archive.size
            )));
            continue;
        }
        if let Some(detail) = got.damaged {
            report.findings.push(Conversion::Partial {
                archive: key,
                partition,
                records: got.records,
                detail,
            });
            continue;
        }
        let sidecar = match listing.sidecars.contains(&key) {
            false => None,
            true => match read_sidecar(store, &key).await {
                Ok(m) => m,
                Err(e) => {
                    report.findings.push(Conversion::Unverified {
                        archive: key,
                        detail: format!("its sidecar cannot be read: {}", Report(&e)),
                    });
                    continue;
                }
            },
        };
        if let Some(m) = sidecar {
            if got.sha256.as_deref() != Some(m.sha256.as_str()) {
                report.findings.push(changed(format!(
                    "converted from SHA-256 {}, its sidecar says {}",
                    got.sha256.as_deref().unwrap_or("unknown"),
                    m.sha256
                )));
                continue;
            }
            // go-triton's sidecars (format 0) count no records.
            if m.format_version > 0 && got.records != m.record_count {
                report.findings.push(changed(format!(
                    "{} records converted, its sidecar says {}",
                    got.records, m.record_count
                )));
                continue;
            }
        }
        report.converted += 1;
    }
    let mut gone: Vec<(String, String)> = converted.into_iter().map(|(k, (p, _))| (k, p)).collect();
    gone.sort();
    for (archive, partition) in gone {
        report
            .findings
            .push(Conversion::Gone { archive, partition });
    }
    Ok(report)
}
