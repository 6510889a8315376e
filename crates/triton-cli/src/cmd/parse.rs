//! How users write durations, times, sizes, dates and start positions on
//! the command line, in every form aws-cli, kubectl and coreutils users
//! type: `1h30m`, `2026-12-01T22:00:00+01:00`, `15m` (ago), `1G`, `2026-12-01`,
//! `TRIM_HORIZON`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use triton_core::time::Date;

/// Parses a duration: one or more `<number><unit>` parts (`500ms`, `30s`,
/// `5m`, `1h30m`, `1.5h`, `2d`; units ms, s, m, h, d, also spelled out as
/// `sec`, `min`, `hours`, `days`), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 1h30m, 2d)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let n: f64 = number.parse().map_err(|_| bad())?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ms" | "msec" | "millis" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "" => return Err(bad()),
            u => {
                return Err(format!(
                    "{s:?}: unknown unit {u:?} (use ms, s, m, h or d, e.g. 1h30m)"
                ))
            }
        };
        total += n * scale;
        rest = after.trim_start();
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Parses a point in time:
/// - RFC 3339 with `Z` or an offset: `2026-12-01T22:00:00Z`,
///   `2026-12-01T22:00:00+01:00`, fractions allowed;
/// - a date, `2026-12-01` or `20261201` (eight digits are a date, not
///   Unix seconds): its midnight UTC;
/// - a duration ago: `15m`, `1h30m`, `2d`, also `15m ago` or `15 minutes
///   ago` (a bare number is not a duration here, see the next form);
/// - Unix seconds: `1764626400`;
/// - `now`.
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    parse_time_at(s, SystemTime::now())
}

fn parse_time_at(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: use 2026-11-29T10:00:00Z, 2026-11-29T11:00:00+01:00, \
             2026-11-29, 15m (ago) or Unix seconds"
        )
    };
    if t == "now" {
        return Ok(now);
    }
    // Eight digits are a day (20261201), not a second of 1970-1973.
    let compact_date = t.len() == 8 && parse_date(t).is_ok();
    if let (Ok(secs), false) = (t.parse::<u64>(), compact_date) {
        return UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(bad);
    }
    if let Ok(date) = parse_date(t) {
        let secs = u64::try_from(date.to_unix()).map_err(|_| bad())?;
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    if t.len() > 10 && matches!(t.as_bytes()[10], b'T' | b't') {
        let ts: jiff::Timestamp = t.parse().map_err(|e: jiff::Error| {
            format!(
                "{s:?} is not a time: {e} (e.g. 2026-11-29T10:00:00Z or 2026-11-29T11:00:00+01:00)"
            )
        })?;
        return Ok(SystemTime::from(ts));
    }
    let ago = t.strip_suffix("ago").map(str::trim_end).unwrap_or(t);
    // A duration ago needs its unit: `1700000000.5` is not 54 years ago.
    if ago.parse::<f64>().is_ok() {
        return Err(bad());
    }
    let Ok(back) = parse_duration(ago) else {
        return Err(bad());
    };
    now.checked_sub(back).ok_or_else(bad)
}

/// Parses a day (UTC): `2026-12-01`, `20261201`, `today` or `yesterday`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let t = s.trim();
    let today = || {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Date::from_unix(i64::try_from(secs).unwrap_or(i64::MAX))
    };
    match t {
        "today" => return Ok(today()),
        "yesterday" => return Ok(Date::from_unix(today().to_unix() - 86_400)),
        _ => {}
    }
    let compact = match t.as_bytes() {
        [_, _, _, _, b'-', _, _, b'-', _, _] => t.replace('-', ""),
        _ => t.to_owned(),
    };
    Date::parse_yyyymmdd(&compact)
        .map_err(|e| format!("{s:?}: {e} (use 2026-12-01, 20261201, today or yesterday)"))
}

/// Parses a size: a number of bytes with an optional unit. `K`, `M`, `G`,
/// `T` and `KiB`…`TiB` are powers of 1024; `KB`…`TB` powers of 1000 (as in
/// coreutils); fractions allowed (`1.5G`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 1G, 1GiB, 5GB)"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "k" | "KiB" => 1024.0,
        "M" | "MiB" => 1024f64.powi(2),
        "G" | "GiB" => 1024f64.powi(3),
        "T" | "TiB" => 1024f64.powi(4),
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (use K, M, G, T, KiB…TiB or KB…TB)"
            ))
        }
    };
    let bytes = (n * scale).round();
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(bytes as u64)
}

/// Where reading starts, as `--from` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// New records only (`latest`, `LATEST`).
    Latest,
    /// The oldest record kept (`trim-horizon`, `TRIM_HORIZON`).
    TrimHorizon,
    /// The first record at or after a time (a time, or
    /// `AT_TIMESTAMP=<time>`).
    At(SystemTime),
    /// Where the client's checkpoints say (`checkpoint`).
    Checkpoint,
}

/// Parses `--from`: an iterator word in triton's or AWS's spelling, or a
/// time in any form [`parse_time`] takes.
pub fn parse_from(s: &str) -> Result<From, String> {
    let word = s.trim().to_ascii_lowercase().replace('_', "-");
    match word.as_str() {
        "latest" => return Ok(From::Latest),
        "trim-horizon" | "oldest" | "earliest" => return Ok(From::TrimHorizon),
        "checkpoint" => return Ok(From::Checkpoint),
        _ => {}
    }
    let time = match s.trim().split_once('=') {
        Some((kind, t)) if kind.eq_ignore_ascii_case("at_timestamp") => t,
        _ => s,
    };
    let at = parse_time(time).map_err(|e| {
        format!("{e}; or latest, trim-horizon (TRIM_HORIZON), LATEST, AT_TIMESTAMP=<time>")
    })?;
    if at > SystemTime::now() + Duration::from_secs(1) {
        return Err(format!("{s:?} is in the future"));
    }
    Ok(From::At(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| parse_duration(s);
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("30"), Ok(Duration::from_secs(30)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(d("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("1h 30m 10s"), Ok(Duration::from_secs(5410)));
        assert_eq!(d("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(d("15 minutes"), Ok(Duration::from_secs(900)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["5 parsecs", "", "-1s", "1h30", "h", "1m-2s", "ms"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = |s| parse_time_at(s, now).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        let secs = Duration::from_secs;
        assert_eq!(t("1700000000"), Ok(secs(1_700_000_000)));
        assert_eq!(t("2023-11-14T22:13:20Z"), Ok(secs(1_700_000_000)));
        assert_eq!(
            t("2023-11-14T22:13:20.25Z"),
            Ok(Duration::new(1_700_000_000, 250_000_000))
        );
        assert_eq!(t("2023-11-14T23:13:20+01:00"), Ok(secs(1_700_000_000)));
        assert_eq!(t("2023-11-14T17:13:20-05:00"), Ok(secs(1_700_000_000)));
        assert_eq!(t("2023-11-14"), Ok(secs(1_699_920_000)));
        assert_eq!(t("20231114"), Ok(secs(1_699_920_000)));
        assert_eq!(t("15m"), Ok(secs(1_800_000_000 - 900)));
        assert_eq!(t("15m ago"), Ok(secs(1_800_000_000 - 900)));
        assert_eq!(t("1h30m ago"), Ok(secs(1_800_000_000 - 5400)));
        assert_eq!(t("2 days ago"), Ok(secs(1_800_000_000 - 172_800)));
        assert_eq!(t("15 minutes ago"), Ok(secs(1_800_000_000 - 900)));
        assert_eq!(t("1 minute ago"), Ok(secs(1_800_000_000 - 60)));
        assert_eq!(t("now"), Ok(secs(1_800_000_000)));
        for bad in [
            "2023-11-14T22:13:20",
            "2023-13-14T22:13:20Z",
            "2023-11-14T24:00:00Z",
            "2023-02-30",
            "yesterday-ish",
            "ago",
            "1700000000.5",
            "1e9",
        ] {
            assert!(parse_time_at(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2026-12-01").unwrap().to_string(), "20261201");
        assert_eq!(parse_date("20261201").unwrap().to_string(), "20261201");
        assert!(parse_date("today").is_ok());
        assert_eq!(
            parse_date("yesterday").unwrap().to_unix() + 86_400,
            parse_date("today").unwrap().to_unix()
        );
        for bad in ["2026-13-01", "2026-12", "12/01/2026", "2026-1-01"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("64K"), Ok(65_536));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        for bad in ["0", "big", "1PB", "-1G", ""] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_positions() {
        assert_eq!(parse_from("latest"), Ok(From::Latest));
        assert_eq!(parse_from("LATEST"), Ok(From::Latest));
        assert_eq!(parse_from("trim-horizon"), Ok(From::TrimHorizon));
        assert_eq!(parse_from("TRIM_HORIZON"), Ok(From::TrimHorizon));
        assert_eq!(parse_from("checkpoint"), Ok(From::Checkpoint));
        let at = |s| match parse_from(s) {
            Ok(From::At(t)) => t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("AT_TIMESTAMP=1700000000"), 1_700_000_000);
        assert_eq!(at("2023-11-14T23:13:20+01:00"), 1_700_000_000);
        assert!(matches!(parse_from("5m"), Ok(From::At(_))));
        assert!(parse_from("2999-01-01").is_err());
        assert!(parse_from("sometime").is_err());
    }
}
