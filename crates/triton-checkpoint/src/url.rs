//! Database URLs: which backend, where, and how to show them without the
//! password.

use std::fmt;
use std::path::PathBuf;

/// The default database when none is given (`TRITON_DB` in the CLI).
pub const DEFAULT_URL: &str = "sqlite://triton.db";

/// A parsed checkpoint database URL.
///
/// `Display` and `Debug` never show a password: use them freely in logs and
/// errors.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, with libpq-style parameters.
    Postgres(PostgresUrl),
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
}

/// A PostgreSQL URL, split into what tokio-postgres understands and the TLS
/// settings libpq understands but tokio-postgres does not.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The URL without `sslmode` and `sslrootcert` (holds the password).
    pub(crate) connect: String,
    /// The same with the password replaced by `***`.
    pub(crate) redacted: String,
    /// `sslmode`, default `prefer` as in libpq.
    pub(crate) ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted certificate authorities.
    pub(crate) root_cert: Option<PathBuf>,
}

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it (libpq's default); the certificate is not
    /// checked unless `sslrootcert` is given.
    Prefer,
    /// TLS, else fail; the certificate is not checked unless `sslrootcert`
    /// is given.
    Require,
    /// TLS with the certificate chain checked against `sslrootcert` or the
    /// Mozilla roots. The host name is checked too (rustls always does),
    /// which is stricter than libpq's `verify-ca`.
    VerifyCa,
    /// TLS with the certificate chain and host name checked.
    VerifyFull,
}

/// Why a database URL was refused. The URL in the message is redacted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid checkpoint database URL {url}: {reason}")]
pub struct UrlError {
    /// The URL, password redacted.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

impl DatabaseUrl {
    /// Parses `postgres://`, `postgresql://` and `sqlite://` URLs.
    pub fn parse(url: &str) -> Result<DatabaseUrl, UrlError> {
        let fail = |reason: String| UrlError {
            url: redact(url),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://").filter(|(s, _)| is_scheme(s)) else {
            return Err(fail(if url.contains('=') {
                "libpq keyword strings are not supported: write \
                 postgres://user:password@host:port/database"
                    .into()
            } else {
                "expected postgres://…, postgresql://… or sqlite://path".into()
            }));
        };
        match scheme {
            "postgres" | "postgresql" => {
                if rest.is_empty() {
                    return Err(fail("no host or database".into()));
                }
                parse_postgres(url).map(DatabaseUrl::Postgres).map_err(fail)
            }
            "sqlite" => {
                // sqlite://relative/path.db, sqlite:///absolute/path.db
                if rest.contains(['?', '#']) {
                    return Err(fail(
                        "sqlite URLs take no parameters (write ? or # in a path as %3F, %23)"
                            .into(),
                    ));
                }
                let path = percent_decode(rest).map_err(fail)?;
                if path.is_empty() || path.ends_with('/') {
                    return Err(fail("no database file after sqlite://".into()));
                }
                Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
            }
            other => Err(fail(format!(
                "unknown scheme {other:?}: expected postgres, postgresql or sqlite"
            ))),
        }
    }
}

fn parse_postgres(url: &str) -> Result<PostgresUrl, String> {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let userinfo = userinfo_end(&url[authority..]).map(|end| &url[authority..authority + end]);
    // tokio-postgres ends the user-info at the first '@': with more than
    // one, or one in the query, it would connect to the wrong host with a
    // cut password.
    if userinfo.is_some_and(|u| u.contains('@')) {
        return Err("the user name or password holds an unencoded '@': write it as %40".into());
    }
    if userinfo.is_some_and(|u| u.find('?').is_some_and(|q| u[q..].contains('='))) {
        return Err("a query parameter holds an unencoded '@': write it as %40".into());
    }
    let after_userinfo = authority + userinfo.map_or(0, str::len);
    let (base, query) = match url[after_userinfo..].find('?') {
        Some(q) => (&url[..after_userinfo + q], &url[after_userinfo + q + 1..]),
        None => (url, ""),
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                ssl_mode = match value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other}: expected disable, allow, prefer, require, \
                             verify-ca or verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value)?)),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(format!("{key} is not supported (client certificates)"))
            }
            _ => kept.push(pair),
        }
    }
    let connect = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // tokio-postgres checks the rest now, so a typo fails at parse time.
    if let Err(e) = connect.parse::<tokio_postgres::Config>() {
        return Err(e.to_string());
    }
    Ok(PostgresUrl {
        redacted: redact(&connect),
        connect,
        ssl_mode,
        root_cert,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            let v = u8::from_str_radix(&hex, 16).map_err(|_| format!("bad escape %{hex}"))?;
            out.push(v);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| "escape is not UTF-8".to_owned())
}

/// Where the user-info of `rest` (a URL after `scheme://`) ends: at its
/// last `@`. Passwords may hold `/`, `?`, `#` and, unencoded, `@`; taking
/// the last `@` hides all of such a password (and, where an `@` is in the
/// query, more than the user-info, which is harmless).
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.rfind('@')
}

/// `url` with the password of its user-info part replaced by `***`; also
/// `password=` query parameters.
///
/// Everything up to the last `@` is treated as user-info, so a password
/// holding `/`, `?`, `#` or an unencoded `@` is still hidden; the user name
/// is shown only when it is a plain name. A string that is not a URL is
/// never echoed: only its shape is named, as it may be a libpq keyword
/// string holding `password=`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|(scheme, _)| is_scheme(scheme))
    else {
        return shape(url);
    };
    let (userinfo, after) = match userinfo_end(rest) {
        Some(at) => {
            let (userinfo, after) = (&rest[..at], &rest[at..]);
            let plain = |u: &str| !u.contains(['/', '?', '#', '=', '&', '@', ':']);
            let shown = match userinfo.split_once(':') {
                Some((user, _)) if plain(user) => format!("{user}:***"),
                None if plain(userinfo) => userinfo.to_owned(),
                _ => "***".to_owned(),
            };
            (shown, after)
        }
        None => (String::new(), rest),
    };
    let after = match after.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        "password=***".to_owned()
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => after.to_owned(),
    };
    format!("{scheme}://{userinfo}{after}")
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// What a string that is not a URL looks like, without any of its text.
fn shape(s: &str) -> String {
    if s.contains('=') {
        format!(
            "(a key=value string of {} characters, not shown)",
            s.chars().count()
        )
    } else {
        format!(
            "(a string of {} characters without a scheme://, not shown)",
            s.chars().count()
        )
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(pg) => f.write_str(&pg.redacted),
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("url", &self.redacted)
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_honoured() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://triton.db").unwrap(),
            DatabaseUrl::Sqlite("triton.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/cp.db").unwrap(),
            DatabaseUrl::Sqlite("data/cp.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/triton/cp.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/triton/cp.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://my%20dir/cp.db").unwrap(),
            DatabaseUrl::Sqlite("my dir/cp.db".into())
        );
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("mysql://h/db", "unknown scheme \"mysql\""),
            ("triton.db", "expected postgres://"),
            ("sqlite://", "no database file"),
            ("sqlite://cp.db?mode=ro", "take no parameters"),
            ("postgres://", "no host"),
            ("postgres://u@h/db?sslmode=sometimes", "sslmode=sometimes"),
            ("postgres://u@h/db?sslkey=k.pem", "sslkey is not supported"),
            ("postgres://u@h/db?nonsense=1", "nonsense"),
        ] {
            let e = DatabaseUrl::parse(url).unwrap_err();
            assert!(e.to_string().contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let url =
            "postgres://triton:s3cret@db.example:5432/cp?sslmode=verify-full&application_name=x";
        let parsed = DatabaseUrl::parse(url).unwrap();
        for shown in [parsed.to_string(), format!("{parsed:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("triton:***@db.example:5432/cp"), "{shown}");
        }
        let DatabaseUrl::Postgres(pg) = parsed else {
            panic!("not postgres")
        };
        assert_eq!(pg.ssl_mode, SslMode::VerifyFull);
        assert!(!pg.connect.contains("sslmode"));
        assert!(pg.connect.contains("application_name=x"));

        let e = DatabaseUrl::parse("postgres://u:hunter2@h/db?sslmode=bad").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            redact("postgres://h/db?user=u&password=hunter2"),
            "postgres://h/db?user=u&password=***"
        );
        // Passwords holding URL delimiters: tokio-postgres reads up to the
        // first '@', and so must the redaction.
        for url in [
            "postgres://u:pa/ss@h/db",
            "postgres://u:pa?ss@h/db",
            "postgres://u:pa#s@h/db",
        ] {
            let shown = redact(url);
            assert!(!shown.contains("pa"), "{url} -> {shown}");
            assert!(
                shown.starts_with("postgres://u:***@h/db"),
                "{url} -> {shown}"
            );
        }
    }

    #[test]
    fn passwords_with_delimiters_never_show() {
        // An unencoded '@' is refused (the driver would split at the first
        // one) and, like any password, never shown.
        let e = DatabaseUrl::parse("postgres://user:S3cr@tPass@127.0.0.1:1/db").unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains("S3cr") && !shown.contains("tPass"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://user:***@127.0.0.1:1/db"),
            "{shown}"
        );
        assert!(shown.contains("%40"), "{shown}");
        for (url, secret) in [
            ("postgres://u:a@b?c@h/db", "b?c"),
            ("postgres://u?x@h/db?password=s3cret", "s3cret"),
            ("postgres://h/db?user=u&password=p@ss", "password=p"),
            ("postgres://u:p@ss/w@h/db", "ss/w"),
            (
                "postgres://u:S3cr@tPass@h/db?password=x@y&sslmode=disable",
                "tPass",
            ),
            ("postgres://u:pa?ss@h/db?application_name=a", "pa?ss"),
        ] {
            let shown = redact(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        // Encoded delimiters are fine and hidden.
        for (url, secret) in [
            ("postgres://u:pa%3Ass@h:5432/db", "pa%3Ass"),
            ("postgres://u:pa:ss@h:5432/db", "pa:ss"),
            ("postgres://u:pa%2Fss@h:5432/db", "pa%2Fss"),
            ("postgres://u:pa/ss@h:5432/db", "pa/ss"),
            ("postgres://u:S3cr%40tPass@h:5432/db", "S3cr%40tPass"),
            ("postgres://u:pa?ss@h:5432/db?sslmode=disable", "pa?ss"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            for shown in [parsed.to_string(), format!("{parsed:?}"), redact(url)] {
                assert!(!shown.contains(secret), "{url} -> {shown}");
                assert!(
                    shown.contains("postgres://u:***@h:5432/db"),
                    "{url} -> {shown}"
                );
            }
        }
        for url in [
            "postgres://u:a@b?c@h/db",
            "postgres://h/db?user=u&password=p@ss&sslmode=require",
        ] {
            let e = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains("%40"), "{url}: {e}");
        }
        // The query is found after the user-info, so a '?' in the password
        // does not take the rest for parameters.
        let DatabaseUrl::Postgres(pg) =
            DatabaseUrl::parse("postgres://u:pa?ss@h/db?sslmode=disable").unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!(pg.ssl_mode, SslMode::Disable);
        assert_eq!(pg.connect, "postgres://u:pa?ss@h/db");
    }

    #[test]
    fn strings_that_are_not_urls_are_never_echoed() {
        let keywords = "host=127.0.0.1 port=1 password=S3cretPass";
        let e = DatabaseUrl::parse(keywords).unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains("S3cretPass") && !shown.contains("127.0.0.1"),
            "{shown}"
        );
        assert!(shown.contains("key=value string"), "{shown}");
        assert!(shown.contains("postgres://user:password@host"), "{shown}");
        assert!(!redact(keywords).contains("S3cret"));
        assert!(!redact("hunter2").contains("hunter2"));
        assert!(!redact("p=a://b").contains("p=a"), "{}", redact("p=a://b"));
    }
}
