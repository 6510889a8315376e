//! Arguments and helpers shared by the commands that talk to a stream.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use triton_core::config::{Config, StreamConfig};
use triton_core::time::Date;
use triton_core::value::Record;
use triton_s3::{ArchiveQuery, Location};

use crate::error::{CliError, CliResult};

/// `--config` and `--stream`.
#[derive(Args, Debug)]
pub struct StreamArgs {
    /// The stream config (YAML: logical name -> stream name, partition_key,
    /// region).
    #[arg(
        long,
        env = "TRITON_CONFIG",
        default_value = "triton.yaml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// The stream's logical name in the config.
    #[arg(long, value_name = "LOGICAL")]
    pub stream: String,
}

impl StreamArgs {
    /// Loads the config and looks the stream up.
    pub fn load(&self) -> Result<StreamConfig, CliError> {
        let config = Config::from_path(&self.config).map_err(|e| CliError::new(e.to_string()))?;
        config
            .stream(&self.stream)
            .cloned()
            .map_err(|e| CliError::new(e.to_string()))
    }
}

/// `--bucket`, `--start-date` and `--end-date`: which archives, for the
/// commands that read them (`cat`, `audit`).
#[derive(Args, Debug)]
pub struct ArchiveRangeArgs {
    /// Where the archives are: an S3 bucket (NAME or s3://NAME, in the
    /// stream's region) or a local directory (file:///PATH, or a path
    /// containing '/', such as ./archive).
    #[arg(long, env = "TRITON_BUCKET", value_name = "BUCKET")]
    pub bucket: String,

    /// First day (UTC), as YYYYMMDD.
    #[arg(long, value_parser = parse_date, value_name = "YYYYMMDD")]
    pub start_date: Date,

    /// Last day, inclusive [default: the start date].
    #[arg(long, value_parser = parse_date, value_name = "YYYYMMDD")]
    pub end_date: Option<Date>,
}

impl ArchiveRangeArgs {
    /// The bucket or directory.
    pub fn location(&self) -> Result<Location, CliError> {
        Location::parse(&self.bucket).map_err(|e| CliError::new(e.to_string()))
    }

    /// The archives of `stream` (the real name) in the range, by `client`.
    pub fn query(&self, stream: &str, client: Option<String>) -> ArchiveQuery {
        ArchiveQuery {
            stream: stream.to_string(),
            start: self.start_date,
            end: self.end_date.unwrap_or(self.start_date),
            client,
        }
    }
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse_yyyymmdd(s).map_err(|e| e.to_string())
}

/// The records of JSON lines input, each with its line number (from 1);
/// blank lines are skipped, and a line that is not one JSON object is an
/// error naming `name` and the line.
pub fn json_records<'a>(
    name: &'a str,
    input: impl BufRead + 'a,
) -> impl Iterator<Item = Result<(usize, Record), CliError>> + 'a {
    input
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            let line_no = i + 1;
            let line = line.map_err(|e| CliError::io(format!("{name} line {line_no}"), e))?;
            if line.trim().is_empty() {
                return Ok(None);
            }
            let record = serde_json::from_str(&line)
                .map_err(|e| CliError::new(format!("{name} line {line_no}: {e}")))?;
            Ok(Some((line_no, record)))
        })
        .filter_map(Result::transpose)
}

/// A Tokio runtime for one command: one thread is plenty for network waits.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

/// A Tokio runtime with two worker threads, for commands that decode or
/// encode archives beside their I/O (`cat`, `store`).
pub fn multi_thread_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

/// Parses `500ms`, `30s`, `5m`, `1h` or `1d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses a point in time: Unix seconds, or RFC 3339 in UTC
/// (`2026-11-29T10:00:00Z`, fractions allowed).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    let bad = || format!("{s:?} is not a time: use Unix seconds or 2026-11-29T10:00:00Z");
    if let Ok(secs) = s.parse::<u64>() {
        return UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(bad);
    }
    let rest = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = rest.split_once('T').ok_or_else(bad)?;
    let date =
        triton_core::time::Date::parse_yyyymmdd(&date.replace('-', "")).map_err(|_| bad())?;
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let parts: Vec<u64> = hms
        .split(':')
        .map(|p| p.parse::<u64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [h, m, sec] = parts[..] else {
        return Err(bad());
    };
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad());
    }
    let nanos = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse::<u32>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
        None => 0,
    };
    let day = u64::try_from(date.to_unix()).map_err(|_| bad())?;
    UNIX_EPOCH
        .checked_add(Duration::new(day + h * 3600 + m * 60 + sec, nanos))
        .ok_or_else(bad)
}

/// Waits for SIGINT or SIGTERM.
pub async fn interrupted() -> CliResult {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CliError::io("listening for SIGTERM", e))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| CliError::io("listening for SIGINT", e)),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CliError::io("listening for Ctrl-C", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn times() {
        let t = |s| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(t("1700000000"), Ok(Duration::from_secs(1_700_000_000)));
        assert_eq!(
            t("2023-11-14T22:13:20Z"),
            Ok(Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            t("2023-11-14T22:13:20.25Z"),
            Ok(Duration::new(1_700_000_000, 250_000_000))
        );
        for bad in [
            "2023-11-14T22:13:20",
            "2023-11-14",
            "2023-13-14T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "yesterday",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
