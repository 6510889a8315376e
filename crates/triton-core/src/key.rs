//! Names of archive objects in S3 (docs/format.md §4).
//!
//! ```text
//! <YYYYMMDD>/<stream>-<client>-<unix_seconds>.tri
//! 20150710/user_activity_prod-store-1436553581.tri
//! ```
//!
//! `<stream>` is the Kinesis stream name, `<client>` the client name of the
//! store process that wrote the file, `<unix_seconds>` when the file was
//! opened, and the directory is the UTC day of that instant.
//!
//! go-triton parses keys with the unanchored regex
//! `(\d{8})/(.+)-(\d+)\.tri$` and splits the middle on `-` into exactly two
//! parts. That cannot read stream names containing `-`, accepts keys with
//! anything in front of the date, empty stream names and impossible dates such
//! as month 13. Here the middle is split at its **last** `-` (client names may
//! not contain `-`, stream names may), and parsing is strict: every rejected
//! key comes with the reason.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::time::{Date, DateErrorKind};

/// Client name that go-triton's store uses when none is configured.
pub const DEFAULT_CLIENT_NAME: &str = "store";

const SUFFIX: &str = ".tri";

/// The parsed name of one archive object.
///
/// Ordered by (date, timestamp, stream, client): readers process archives
/// in the order they were opened, and the directory date comes first so that
/// a key whose directory disagrees with its timestamp still sorts with the
/// day it was listed under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArchiveKey {
    date: Date,
    stream: String,
    client: String,
    timestamp: u64,
}

impl ArchiveKey {
    /// The key for an archive of `stream` opened by `client` at `timestamp`
    /// (unix seconds); the date directory is the UTC day of `timestamp`.
    ///
    /// Fails if either name is empty or contains `/`, if the client name
    /// contains `-` (see [`validate_client_name`]), or if `timestamp` is after
    /// year 9999, whose days cannot be written as `YYYYMMDD`.
    pub fn new(
        stream: impl Into<String>,
        client: impl Into<String>,
        timestamp: u64,
    ) -> Result<ArchiveKey, KeyError> {
        let stream = stream.into();
        let client = client.into();
        validate_stream_name(&stream)?;
        validate_client_name(&client)?;
        // `Date::from_unix` would clamp such timestamps to 9999-12-31,
        // filing the archive under a day it does not belong to.
        let end_of_max_day = Date::MAX.to_unix() + 86_400;
        let date = match i64::try_from(timestamp) {
            Ok(secs) if secs < end_of_max_day => Date::from_unix(secs),
            _ => return Err(KeyError::TimestampOutOfRange { timestamp }),
        };
        Ok(ArchiveKey {
            date,
            stream,
            client,
            timestamp,
        })
    }

    /// Parses an object key, rejecting anything that is not exactly
    /// `<YYYYMMDD>/<stream>-<client>-<unix_seconds>.tri`.
    ///
    /// The stream/client split is at the last `-`, so stream names containing
    /// `-` parse correctly. The timestamp must be plain decimal without
    /// leading zeros, so that the parsed key displays as the same string and
    /// can be used to fetch the object again. The date directory is not
    /// checked against the timestamp (go-triton does not either): the listing
    /// directory is what readers go by.
    pub fn parse(key: &str) -> Result<ArchiveKey, KeyError> {
        parse_parts(key).map_err(|reason| KeyError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    }

    /// The date directory: the UTC day the archive was opened.
    pub fn date(&self) -> Date {
        self.date
    }

    /// The Kinesis stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The client name of the store process that wrote the archive.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// When the archive was opened, in unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Whether this archive belongs to `stream` (and to `client`, if given).
    ///
    /// Listing by [`day_prefix`] or [`client_prefix`] is not enough on its own
    /// (the prefix for stream `a` also lists stream `a-b`), so readers must
    /// filter parsed keys with this.
    pub fn matches(&self, stream: &str, client: Option<&str>) -> bool {
        self.stream == stream && client.is_none_or(|c| self.client == c)
    }
}

impl fmt::Display for ArchiveKey {
    /// The S3 object key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}-{}-{}{SUFFIX}",
            self.date, self.stream, self.client, self.timestamp
        )
    }
}

impl FromStr for ArchiveKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<ArchiveKey, KeyError> {
        ArchiveKey::parse(s)
    }
}

impl PartialOrd for ArchiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ArchiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.date
            .cmp(&other.date)
            .then(self.timestamp.cmp(&other.timestamp))
            .then_with(|| self.stream.cmp(&other.stream))
            .then_with(|| self.client.cmp(&other.client))
    }
}

fn parse_parts(key: &str) -> Result<ArchiveKey, KeyErrorReason> {
    use KeyErrorReason as R;

    // Checked first because listings commonly contain other objects next to
    // the archives (go-triton writes `<key>.metadata`), and for those the
    // suffix is the reason that matters.
    let Some(rest) = key.strip_suffix(SUFFIX) else {
        return Err(R::NotTri);
    };
    let Some((dir, name)) = rest.split_once('/') else {
        return Err(R::MissingDateDirectory);
    };
    if name.contains('/') {
        return Err(if Date::parse_kind(dir).is_ok() {
            R::SlashInName
        } else {
            R::UnexpectedPrefix
        });
    }
    let date = Date::parse_kind(dir).map_err(R::Date)?;

    let (middle, digits) = name.rsplit_once('-').ok_or(R::MissingTimestamp)?;
    if digits.is_empty() {
        return Err(R::MissingTimestamp);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(R::TimestampNotDecimal);
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(R::TimestampLeadingZero);
    }
    let timestamp = digits.parse().map_err(|_| R::TimestampOverflow)?;

    let (stream, client) = middle.rsplit_once('-').ok_or(R::MissingClient)?;
    if stream.is_empty() {
        return Err(R::EmptyStream);
    }
    if client.is_empty() {
        return Err(R::EmptyClient);
    }
    Ok(ArchiveKey {
        date,
        stream: stream.to_owned(),
        client: client.to_owned(),
        timestamp,
    })
}

/// `YYYYMMDD/<stream>-`: the S3 prefix listing one day's archives of `stream`.
///
/// The prefix is ambiguous: for stream `a` it also lists the archives of
/// stream `a-b` (e.g. `20150801/a-b-store-1.tri`, stream `a-b`, client
/// `store`). Readers must parse each listed key and keep only those for which
/// [`ArchiveKey::matches`] holds.
pub fn day_prefix(date: Date, stream: &str) -> String {
    format!("{date}/{stream}-")
}

/// `YYYYMMDD/<stream>-<client>-`: the S3 prefix listing one day's archives of
/// `stream` written by `client`.
///
/// Ambiguous like [`day_prefix`]: for stream `a`, client `b` it also lists
/// stream `a-b` with any client, so filter with [`ArchiveKey::matches`].
pub fn client_prefix(date: Date, stream: &str, client: &str) -> String {
    format!("{date}/{stream}-{client}-")
}

/// Checks that `name` can be used as the client part of archive names.
///
/// Client names must be non-empty and contain neither `-` (the separator
/// that lets keys be split back into stream and client) nor `/`.
pub fn validate_client_name(name: &str) -> Result<(), KeyError> {
    let reason = if name.is_empty() {
        KeyErrorReason::EmptyName
    } else if name.contains('-') {
        KeyErrorReason::ClientContainsDash
    } else if name.contains('/') {
        KeyErrorReason::NameContainsSlash
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidClientName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks that `name` can be used as the stream part of archive names:
/// non-empty and without `/` (`-` is allowed).
pub fn validate_stream_name(name: &str) -> Result<(), KeyError> {
    let reason = if name.is_empty() {
        KeyErrorReason::EmptyName
    } else if name.contains('/') {
        KeyErrorReason::NameContainsSlash
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidStreamName {
        name: name.to_owned(),
        reason,
    })
}

/// An archive key that cannot be parsed or built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A string is not a valid archive key.
    #[error("invalid archive key \"{key}\": {reason}")]
    InvalidKey {
        /// The rejected key, verbatim.
        key: String,
        /// What is wrong with it.
        reason: KeyErrorReason,
    },
    /// A client name cannot be used in archive keys.
    #[error("invalid client name \"{name}\": {reason}")]
    InvalidClientName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: KeyErrorReason,
    },
    /// A stream name cannot be used in archive keys.
    #[error("invalid stream name \"{name}\": {reason}")]
    InvalidStreamName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: KeyErrorReason,
    },
    /// A timestamp's UTC day is after 9999-12-31, so it has no `YYYYMMDD`.
    #[error("invalid archive timestamp {timestamp}: after the year 9999")]
    TimestampOutOfRange {
        /// The rejected unix timestamp.
        timestamp: u64,
    },
}

/// Why a key or name was rejected; the `Display` text is the reason alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyErrorReason {
    /// The key does not end in `.tri` (e.g. `.tri.gz`, `.tri.metadata`).
    #[error("does not end in \".tri\"")]
    NotTri,
    /// The key has no `/` separating the date directory from the file name.
    #[error("missing the \"YYYYMMDD/\" date directory")]
    MissingDateDirectory,
    /// Something precedes the date directory, e.g. `x/20150801/...`.
    #[error("unexpected prefix before the date")]
    UnexpectedPrefix,
    /// The file name after the date directory contains `/`.
    #[error("unexpected '/' after the date directory")]
    SlashInName,
    /// The date directory is not a valid `YYYYMMDD` date.
    #[error("bad date directory: {0}")]
    Date(DateErrorKind),
    /// No `-<unix_seconds>` before `.tri`.
    #[error("missing \"-<unix_seconds>\" before \".tri\"")]
    MissingTimestamp,
    /// The timestamp contains something other than ASCII digits.
    #[error("timestamp is not a decimal number")]
    TimestampNotDecimal,
    /// The timestamp has a leading zero, which go-triton never writes.
    #[error("timestamp has a leading zero")]
    TimestampLeadingZero,
    /// The timestamp does not fit in a `u64`.
    #[error("timestamp does not fit in 64 bits")]
    TimestampOverflow,
    /// No `-` separates the stream name from the client name.
    #[error("missing '-' between stream and client names")]
    MissingClient,
    /// The key's stream name is empty.
    #[error("empty stream name")]
    EmptyStream,
    /// The key's client name is empty.
    #[error("empty client name")]
    EmptyClient,
    /// A stream or client name given to [`ArchiveKey::new`] or
    /// [`validate_client_name`] is empty.
    #[error("names must not be empty")]
    EmptyName,
    /// A stream or client name contains `/`, which separates the directory.
    #[error("names must not contain '/' (archive names use it after the date)")]
    NameContainsSlash,
    /// A client name contains `-`.
    #[error("client names must not contain '-' (archive names use '-' as separator)")]
    ClientContainsDash,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(key: &str) -> ArchiveKey {
        ArchiveKey::parse(key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_reason(key: &str) -> KeyErrorReason {
        match ArchiveKey::parse(key) {
            Err(KeyError::InvalidKey { key: k, reason }) => {
                assert_eq!(k, key);
                reason
            }
            other => panic!("{key}: unexpected {other:?}"),
        }
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn parts(k: &ArchiveKey) -> (String, &str, &str, u64) {
        (k.date().to_string(), k.stream(), k.client(), k.timestamp())
    }

    // The cases below are go-triton's own parse results; the comments say
    // what Go produced.

    #[test]
    fn go_invalid_key_name_short_date() {
        // Go: Invalid key name.
        let e = ArchiveKey::parse("2015080/stream-store-1.tri").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid archive key \"2015080/stream-store-1.tri\": \
             bad date directory: expected 8 digits YYYYMMDD"
        );
    }

    #[test]
    fn go_accepted_empty_stream() {
        // Go: accepted with stream "", client "store".
        let key = "20150801/-store-1.tri";
        assert_eq!(parse_reason(key), KeyErrorReason::EmptyStream);
        assert!(ArchiveKey::parse(key)
            .unwrap_err()
            .to_string()
            .ends_with(": empty stream name"));
    }

    #[test]
    fn go_failed_stream_with_dash() {
        // Go: failed (middle split into three parts).
        let k = parse_ok("20150801/my-stream-store-1436553581.tri");
        assert_eq!(
            parts(&k),
            ("20150801".into(), "my-stream", "store", 1_436_553_581)
        );
    }

    #[test]
    fn go_gz_suffix() {
        // Go: Invalid key name.
        let key = "20150801/stream-store-1436553581.tri.gz";
        assert_eq!(parse_reason(key), KeyErrorReason::NotTri);
        assert_eq!(
            ArchiveKey::parse(key).unwrap_err().to_string(),
            "invalid archive key \"20150801/stream-store-1436553581.tri.gz\": \
             does not end in \".tri\""
        );
    }

    #[test]
    fn go_timestamp_overflow() {
        // Go: failed converting the timestamp.
        let key = "20150801/stream-store-99999999999999999999.tri";
        assert_eq!(parse_reason(key), KeyErrorReason::TimestampOverflow);
        let max = format!("20150801/stream-store-{}.tri", u64::MAX);
        assert_eq!(parse_ok(&max).timestamp(), u64::MAX);
    }

    #[test]
    fn go_ok_test_stream() {
        let k = parse_ok("20150801/test_stream-archive-123455.tri");
        assert_eq!(
            parts(&k),
            ("20150801".into(), "test_stream", "archive", 123_455)
        );
    }

    #[test]
    fn go_ok_user_activity() {
        let k = parse_ok("20150801/user_activity_prod-store-1436553581.tri");
        assert_eq!(
            parts(&k),
            (
                "20150801".into(),
                "user_activity_prod",
                "store",
                1_436_553_581
            )
        );
    }

    #[test]
    fn go_accepted_month_13() {
        // Go: accepted.
        let key = "20151301/stream-store-1.tri";
        assert_eq!(
            parse_reason(key),
            KeyErrorReason::Date(DateErrorKind::MonthOutOfRange { month: 13 })
        );
        assert_eq!(
            ArchiveKey::parse(key).unwrap_err().to_string(),
            "invalid archive key \"20151301/stream-store-1.tri\": \
             bad date directory: month 13 is out of range"
        );
    }

    #[test]
    fn go_accepted_prefix() {
        // Go: accepted (unanchored regex).
        let key = "x/20150801/stream-store-1.tri";
        assert_eq!(parse_reason(key), KeyErrorReason::UnexpectedPrefix);
        assert!(ArchiveKey::parse(key)
            .unwrap_err()
            .to_string()
            .ends_with(": unexpected prefix before the date"));
    }

    #[test]
    fn new_displays_key() {
        let k = ArchiveKey::new("user_activity_prod", "store", 1_795_962_403).unwrap();
        assert_eq!(
            k.to_string(),
            "20261129/user_activity_prod-store-1795962403.tri"
        );
        let k = ArchiveKey::new("user_activity_prod", DEFAULT_CLIENT_NAME, 1_436_553_581).unwrap();
        assert_eq!(
            k.to_string(),
            "20150710/user_activity_prod-store-1436553581.tri"
        );
    }

    #[test]
    fn other_rejections() {
        use KeyErrorReason as R;
        for (key, reason) in [
            ("stream-store-1.tri", R::MissingDateDirectory),
            (".tri", R::MissingDateDirectory),
            ("20150801/stream-store-1.tri.metadata", R::NotTri),
            ("20150801/stream-store-1.TRI", R::NotTri),
            ("20150801/a/stream-store-1.tri", R::SlashInName),
            ("/20150801/stream-store-1.tri", R::UnexpectedPrefix),
            ("20150801/.tri", R::MissingTimestamp),
            ("20150801/stream.tri", R::MissingTimestamp),
            ("20150801/stream-store-.tri", R::MissingTimestamp),
            ("20150801/stream-store-1x.tri", R::TimestampNotDecimal),
            ("20150801/stream-store-+1.tri", R::TimestampNotDecimal),
            ("20150801/stream-store-01.tri", R::TimestampLeadingZero),
            ("20150801/stream-1.tri", R::MissingClient),
            ("20150801/stream--1.tri", R::EmptyClient),
            ("20150801/-1.tri", R::MissingClient),
            ("20150801/--1.tri", R::EmptyStream),
            (
                "20150229/stream-store-1.tri",
                R::Date(DateErrorKind::DayOutOfRange {
                    year: 2015,
                    month: 2,
                    day: 29,
                }),
            ),
        ] {
            assert_eq!(parse_reason(key), reason, "{key}");
        }
        assert_eq!(parse_ok("20150801/stream-store-0.tri").timestamp(), 0);
    }

    #[test]
    fn round_trip() {
        for (stream, client, ts) in [
            ("user_activity_prod", "store", 1_436_553_581),
            ("my-stream", "store", 1_436_553_581),
            ("a-", "b", 0),
            ("-a", "b", 1),
            ("a--b", "c", 253_402_300_799),
            ("s.t_r", "archive", 86_399),
        ] {
            let k = ArchiveKey::new(stream, client, ts).unwrap();
            let s = k.to_string();
            assert_eq!(s.parse::<ArchiveKey>(), Ok(k.clone()), "{s}");
            assert_eq!(ArchiveKey::parse(&s).unwrap().to_string(), s);
            assert!(s.starts_with(&day_prefix(k.date(), stream)));
            assert!(s.starts_with(&client_prefix(k.date(), stream, client)));
        }
        for key in [
            "20150801/my-stream-store-1436553581.tri",
            "00000101/a-b-0.tri",
            "99991231/a-b-18446744073709551615.tri",
        ] {
            assert_eq!(parse_ok(key).to_string(), key);
        }
    }

    #[test]
    fn new_validates() {
        assert_eq!(
            ArchiveKey::new("s", "a-b", 1).unwrap_err().to_string(),
            "invalid client name \"a-b\": client names must not contain '-' \
             (archive names use '-' as separator)"
        );
        assert!(matches!(
            ArchiveKey::new("", "store", 1),
            Err(KeyError::InvalidStreamName {
                reason: KeyErrorReason::EmptyName,
                ..
            })
        ));
        assert!(matches!(
            ArchiveKey::new("a/b", "store", 1),
            Err(KeyError::InvalidStreamName {
                reason: KeyErrorReason::NameContainsSlash,
                ..
            })
        ));
        assert!(matches!(
            ArchiveKey::new("s", "", 1),
            Err(KeyError::InvalidClientName {
                reason: KeyErrorReason::EmptyName,
                ..
            })
        ));
        assert!(matches!(
            ArchiveKey::new("s", "a/b", 1),
            Err(KeyError::InvalidClientName {
                reason: KeyErrorReason::NameContainsSlash,
                ..
            })
        ));
        assert_eq!(
            ArchiveKey::new("s", "store", 253_402_300_799)
                .unwrap()
                .date()
                .to_string(),
            "99991231"
        );
        for ts in [253_402_300_800, i64::MAX as u64, u64::MAX] {
            assert_eq!(
                ArchiveKey::new("s", "store", ts),
                Err(KeyError::TimestampOutOfRange { timestamp: ts })
            );
        }
    }

    #[test]
    fn validate_client() {
        assert_eq!(validate_client_name("store"), Ok(()));
        assert_eq!(validate_client_name("archive_2.x"), Ok(()));
        assert_eq!(
            validate_client_name("a-b").unwrap_err().to_string(),
            "invalid client name \"a-b\": client names must not contain '-' \
             (archive names use '-' as separator)"
        );
        assert!(validate_client_name("").is_err());
        assert!(validate_client_name("a/b").is_err());
    }

    #[test]
    fn ordering_is_date_then_timestamp() {
        let mut keys: Vec<ArchiveKey> = [
            "20150802/a-store-5.tri",
            "20150801/b-store-9.tri",
            "20150801/a-store-9.tri",
            "20150801/a-archive-9.tri",
            "20150801/z-store-1.tri",
        ]
        .iter()
        .map(|k| parse_ok(k))
        .collect();
        keys.sort();
        let sorted: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            [
                "20150801/z-store-1.tri",
                "20150801/a-archive-9.tri",
                "20150801/a-store-9.tri",
                "20150801/b-store-9.tri",
                "20150802/a-store-5.tri",
            ]
        );
    }

    #[test]
    fn prefixes() {
        let d = date("20150710");
        assert_eq!(
            day_prefix(d, "user_activity_prod"),
            "20150710/user_activity_prod-"
        );
        assert_eq!(
            client_prefix(d, "user_activity_prod", "store"),
            "20150710/user_activity_prod-store-"
        );
    }

    #[test]
    fn prefix_ambiguity_is_resolved_by_matches() {
        let d = date("20150801");
        let own = parse_ok("20150801/a-b-1.tri"); // stream a, client b
        let other = parse_ok("20150801/a-b-x-1.tri"); // stream a-b, client x
        for k in [&own, &other] {
            assert!(k.to_string().starts_with(&day_prefix(d, "a")));
            assert!(k.to_string().starts_with(&client_prefix(d, "a", "b")));
        }
        assert!(own.matches("a", None));
        assert!(own.matches("a", Some("b")));
        assert!(!own.matches("a", Some("x")));
        assert!(!own.matches("a-b", None));
        assert!(!other.matches("a", None));
        assert!(!other.matches("a", Some("b")));
        assert!(other.matches("a-b", None));
        assert!(other.matches("a-b", Some("x")));
    }
}
