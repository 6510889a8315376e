//! Stream configuration: the YAML file that maps the logical stream names an
//! application uses to real Kinesis streams (docs/format.md §1).
//!
//! ```yaml
//! user_activity:            # logical name the application uses
//!   name: user_activity_v2  # real Kinesis stream name
//!   partition_key: user_id  # record field whose value becomes the partition key
//!   region: us-west-1       # AWS region of the stream
//! ```
//!
//! go-triton checked nothing at load time, so a typo surfaced much later as an
//! unusable stream. This loader checks every stream up front and names the
//! file, the stream, the field and, where the YAML parser knows it, the line.
//! Unknown keys are still ignored, as they were in go-triton, so configs
//! written for it (or carrying settings for other tools) keep loading.
//!
//! Divergence from go-triton's yaml.v2: a non-string scalar such as
//! `name: 5` or a `5:` stream key is rejected instead of silently becoming
//! the string `"5"`, because serde_yaml hands over the parsed number, not the
//! source text, and a numeric stream name is far more likely a mistake.
//!
//! Loading reads the text into a raw tree of YAML nodes, then checks it in
//! one pass. The tree is not `serde_yaml::Value`, whose mappings refuse a
//! duplicate key before we could say which stream or field it is. Neither
//! keeps positions: serde_yaml tells a node's line only in an error raised
//! while that node is being read, so the line of a reported problem comes
//! from reading the text once more and failing at that node.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// The environment variable go-triton read the config path from; kept so
/// existing deployments need no change.
pub const CONFIG_ENV: &str = "TRITON_CONFIG";

/// Where one logical stream really lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Real Kinesis stream name.
    pub name: String,
    /// Record field whose value becomes the Kinesis partition key.
    ///
    /// Optional because only producers need it. An empty or null value is
    /// treated as absent: go-triton could not tell the two apart either.
    pub partition_key: Option<String>,
    /// AWS region of the stream.
    pub region: String,
}

impl StreamConfig {
    /// Borrowing view of the `partition_key` field, so callers need
    /// not write `.as_deref()` everywhere.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }
}

/// A loaded and validated stream config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    streams: BTreeMap<String, StreamConfig>,
    origin: String,
    unknown_keys: Vec<UnknownKey>,
}

/// A key of a stream's settings that no version of triton reads: ignored,
/// as go-triton did, but most likely a typo worth a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// Logical stream name.
    pub stream: String,
    /// The key as written.
    pub key: String,
    /// The known key it is closest to, when it is close enough to be a typo.
    pub closest: Option<&'static str>,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {:?}: unknown key {:?} is ignored",
            self.stream, self.key
        )?;
        if let Some(closest) = self.closest {
            write!(f, " (did you mean {closest:?}?)")?;
        }
        Ok(())
    }
}

/// A config loaded by [`Config::parse_lenient`]: the streams that are
/// valid, and the errors of those that are not.
#[derive(Debug)]
pub struct Lenient {
    /// The valid streams.
    pub config: Config,
    /// One error per broken stream entry, in file order.
    pub broken: Vec<ConfigError>,
}

impl Config {
    /// Loads the file at `path`; its display form becomes the origin named
    /// in every error.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let (text, origin) = read_path(path.as_ref())?;
        Config::parse(&text, &origin)
    }

    /// Loads the file at `path` as [`Config::parse_lenient`] does.
    pub fn from_path_lenient(path: impl AsRef<Path>) -> Result<Lenient, ConfigError> {
        let (text, origin) = read_path(path.as_ref())?;
        Config::parse_lenient(&text, &origin)
    }

    /// Loads from any reader; `origin` (a path or a label such as
    /// `"<stdin>"`) is what error messages will call it.
    pub fn from_reader(mut reader: impl Read, origin: &str) -> Result<Config, ConfigError> {
        let mut text = String::new();
        match reader.read_to_string(&mut text) {
            Ok(_) => Config::parse(&text, origin),
            Err(error) => Err(ConfigError::Io {
                origin: origin.to_owned(),
                error,
            }),
        }
    }

    /// Loads the file named by [`CONFIG_ENV`], as go-triton did.
    ///
    /// An empty value counts as unset: go-triton's `os.Getenv` could not
    /// tell them apart, and an empty path can only fail anyway.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_env_value(std::env::var_os(CONFIG_ENV))
    }

    /// [`Config::from_env`] given the variable's value, so that tests need
    /// not change the process environment, which is unsound while other
    /// test threads may read it.
    fn from_env_value(value: Option<OsString>) -> Result<Config, ConfigError> {
        match value {
            Some(path) if !path.is_empty() => Config::from_path(path),
            _ => Err(ConfigError::EnvNotSet { var: CONFIG_ENV }),
        }
    }

    /// Parses and validates config text; `origin` is what error messages
    /// will call it.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Check { text, origin }
            .load(false)
            .map(|lenient| lenient.config)
    }

    /// Like [`Config::parse`], except that a broken stream entry (a missing
    /// or invalid field) does not fail the whole file: its error is
    /// returned beside the valid streams, so that one team's typo in a
    /// shared config does not stop the commands of every other stream.
    /// Errors of the file itself (YAML syntax, a duplicate stream) still
    /// fail it.
    pub fn parse_lenient(text: &str, origin: &str) -> Result<Lenient, ConfigError> {
        Check { text, origin }.load(true)
    }

    /// Looks up a logical stream name.
    pub fn stream(&self, logical: &str) -> Result<&StreamConfig, ConfigError> {
        self.streams
            .get(logical)
            .ok_or_else(|| ConfigError::UnknownStream {
                origin: self.origin.clone(),
                stream: logical.to_owned(),
                known: if self.streams.is_empty() {
                    "(none)".to_owned()
                } else {
                    self.streams
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }

    /// All streams, sorted by logical name so output is deterministic.
    pub fn streams(&self) -> impl Iterator<Item = (&str, &StreamConfig)> {
        self.streams.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The file path or label the config was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Keys of the valid streams' settings that are not read (typos such
    /// as `regoin:`, or settings of other tools), in file order.
    pub fn unknown_keys(&self) -> &[UnknownKey] {
        &self.unknown_keys
    }
}

/// The text of the file at `path` and the origin errors call it by.
fn read_path(path: &Path) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(error) => Err(ConfigError::Io { origin, error }),
    }
}

impl ConfigError {
    /// The logical stream whose entry is broken, for errors confined to
    /// one entry.
    pub fn stream(&self) -> Option<&str> {
        match self {
            ConfigError::StreamNotAMapping { stream, .. }
            | ConfigError::MissingField { stream, .. }
            | ConfigError::InvalidField { stream, .. }
            | ConfigError::EmptyField { stream, .. }
            | ConfigError::DuplicateField { stream, .. } => Some(stream),
            _ => None,
        }
    }
}

/// Why a config could not be loaded or a stream could not be found.
///
/// Every message is a single line starting with `config <origin>` so a CLI
/// can print it as is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`CONFIG_ENV`] is unset or empty.
    #[error("config: environment variable {var} is not set; it must name the stream config file")]
    EnvNotSet {
        /// The variable that was consulted.
        var: &'static str,
    },
    /// The file or reader could not be read (including non-UTF-8 content).
    // The io::Error is printed rather than exposed as `source` so the one
    // line a CLI prints already says why.
    #[error("config {origin}: cannot read: {error}")]
    Io {
        /// Path or label of the config.
        origin: String,
        /// The underlying failure.
        error: std::io::Error,
    },
    /// The YAML parser rejected the text; `message` is its own and already
    /// includes the position when known.
    #[error("config {origin}: invalid YAML: {message}")]
    Syntax {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when the parser gave one.
        line: Option<usize>,
        /// 1-based column, when the parser gave one.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The document holds nothing (empty, only comments, or a bare null).
    #[error("config {origin}: empty config file (expected a mapping of logical stream names to settings)")]
    Empty {
        /// Path or label of the config.
        origin: String,
    },
    /// The top level is not a mapping.
    #[error("config {origin}{}: top level must be a mapping of logical stream names to settings, found {found}", at(.line))]
    NotAMapping {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What was there instead, e.g. `sequence`.
        found: String,
    },
    /// A top-level key is not a string.
    #[error("config {origin}{}: logical stream name must be a string, found {found} (quote it if it is meant as a name)", at(.line))]
    InvalidStreamName {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What was there instead, e.g. `integer 5`.
        found: String,
    },
    /// The same logical stream name appears twice.
    #[error("config {origin}{}: stream {stream:?} is defined more than once", at(.line))]
    DuplicateStream {
        /// Path or label of the config.
        origin: String,
        /// 1-based line of the second definition, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
    },
    /// A stream's value is not a mapping of settings.
    #[error("config {origin}{}: stream {stream:?}: settings must be a mapping, found {found}", at(.line))]
    StreamNotAMapping {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
        /// What was there instead.
        found: String,
    },
    /// A required field is absent.
    #[error("config {origin}: stream {stream:?}: field {field:?} is missing")]
    MissingField {
        /// Path or label of the config.
        origin: String,
        /// Logical stream name.
        stream: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong YAML type.
    #[error("config {origin}{}: stream {stream:?}: field {field:?} must be {expected}, found {found}", at(.line))]
    InvalidField {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
        /// The offending field.
        field: &'static str,
        /// What the field must be, e.g. `a string`.
        expected: &'static str,
        /// What was there instead, e.g. `integer 5`.
        found: String,
    },
    /// A required field is an empty string.
    #[error("config {origin}{}: stream {stream:?}: field {field:?} must not be empty", at(.line))]
    EmptyField {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
        /// The offending field.
        field: &'static str,
    },
    /// A field appears twice in one stream; which one should win is a guess.
    #[error("config {origin}{}: stream {stream:?}: field {field:?} is set more than once", at(.line))]
    DuplicateField {
        /// Path or label of the config.
        origin: String,
        /// 1-based line of the second occurrence, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
        /// The repeated field.
        field: &'static str,
    },
    /// [`Config::stream`] was asked for a name the config does not define.
    #[error("config {origin}: unknown stream {stream:?} (known: {known})")]
    UnknownStream {
        /// Path or label of the config.
        origin: String,
        /// The name asked for.
        stream: String,
        /// Defined logical names, sorted and comma separated, or `(none)`.
        known: String,
    },
}

/// ` line N` right after the origin, when the line is known.
fn at(line: &Option<usize>) -> String {
    line.map_or_else(String::new, |line| format!(" line {line}"))
}

const NAME: &str = "name";
const REGION: &str = "region";
const PARTITION_KEY: &str = "partition_key";
/// The known fields, in the order of [`Fields`].
const FIELDS: [&str; 3] = [NAME, REGION, PARTITION_KEY];
/// The YAML merge key, which go-triton's yaml.v2 honoured, so settings
/// shared through anchors keep working.
const MERGE: &str = "<<";

/// Values of [`FIELDS`] gathered from one settings mapping and its merge
/// sources, before the required ones are checked.
type Fields = [Option<String>; 3];

/// Fills what is still unset in `into` from `from`: YAML merge semantics,
/// where explicit keys and earlier merge sources win.
fn fill(into: &mut Fields, from: Fields) {
    for (slot, value) in into.iter_mut().zip(from) {
        *slot = slot.take().or(value);
    }
}

/// One YAML node, aliases expanded, mappings kept as entries in file order
/// so that duplicate keys can be reported. `index` numbers nodes in the
/// order they are read, which [`Check::line`] uses to find one again.
struct Node {
    index: usize,
    kind: Kind,
}

enum Kind {
    Null,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// Any other scalar or a tagged value, as error messages describe it
    /// (`integer 5`); none of them is ever valid.
    Other(String),
}

impl Node {
    /// What error messages say was found instead of what was expected.
    fn found(&self) -> String {
        match &self.kind {
            Kind::Null => "null".to_owned(),
            Kind::Str(_) => "string".to_owned(),
            Kind::Seq(_) => "sequence".to_owned(),
            Kind::Map(_) => "mapping".to_owned(),
            Kind::Other(found) => found.clone(),
        }
    }
}

/// Reads a whole document into a [`Node`], numbering nodes as it goes;
/// with `fail_at` set it fails on reaching that node instead. Failing
/// inside the node's visitor is what makes serde_yaml stamp the node's
/// position on the error: that is how a node's line is found.
#[derive(Clone, Copy)]
struct Reader<'a> {
    next: &'a Cell<usize>,
    fail_at: Option<usize>,
}

fn read(text: &str, fail_at: Option<usize>) -> Result<Node, serde_yaml::Error> {
    let next = Cell::new(0);
    let reader = Reader {
        next: &next,
        fail_at,
    };
    reader.deserialize(serde_yaml::Deserializer::from_str(text))
}

impl Reader<'_> {
    /// Numbers the node being visited, then reads it with `kind`.
    fn node<E: de::Error>(self, kind: impl FnOnce() -> Result<Kind, E>) -> Result<Node, E> {
        let index = self.next.replace(self.next.get() + 1);
        if self.fail_at == Some(index) {
            return Err(E::custom("the node looked for"));
        }
        Ok(Node {
            index,
            kind: kind()?,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Node, D::Error> {
        de.deserialize_any(self)
    }
}

/// Visitor methods for scalars that are never valid, described as
/// `<what> <value>`.
macro_rules! other_scalars {
    ($($method:ident($ty:ty) => $what:literal),*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Node, E> {
            self.node(|| Ok(Kind::Other(format!(concat!($what, " {}"), v))))
        }
    )*};
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    other_scalars!(visit_bool(bool) => "boolean", visit_f64(f64) => "float",
        visit_i64(i64) => "integer", visit_u64(u64) => "integer",
        visit_i128(i128) => "integer", visit_u128(u128) => "integer");

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.node(|| Ok(Kind::Str(v.to_owned())))
    }

    // serde_yaml reports a document without content as none, `~` as unit.
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.node(|| Ok(Kind::Null))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.node(|| Ok(Kind::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.node(|| {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(self)? {
                items.push(item);
            }
            Ok(Kind::Seq(items))
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.node(|| {
            let mut entries = Vec::new();
            while let Some(key) = map.next_key_seed(self)? {
                entries.push((key, map.next_value_seed(self)?));
            }
            Ok(Kind::Map(entries))
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, tagged: A) -> Result<Node, A::Error> {
        self.node(|| {
            // Still walked, so that broken YAML inside it is reported.
            IgnoredAny.visit_enum(tagged)?;
            Ok(Kind::Other("tagged value".to_owned()))
        })
    }
}

/// The validation pass over one document.
struct Check<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Check<'_> {
    /// The line of `node`. Only called for an error, so reading the text a
    /// second time costs nothing in the normal case.
    fn line(&self, node: &Node) -> Option<usize> {
        Some(read(self.text, Some(node.index)).err()?.location()?.line())
    }

    fn origin(&self) -> String {
        self.origin.to_owned()
    }

    /// Checks every stream in file order; unless `lenient`, the first
    /// broken stream fails the file.
    fn load(&self, lenient: bool) -> Result<Lenient, ConfigError> {
        let root = read(self.text, None).map_err(|err| ConfigError::Syntax {
            origin: self.origin(),
            line: err.location().map(|l| l.line()),
            column: err.location().map(|l| l.column()),
            message: err.to_string(),
        })?;
        let entries = match &root.kind {
            Kind::Map(entries) => entries,
            Kind::Null => {
                return Err(ConfigError::Empty {
                    origin: self.origin(),
                })
            }
            _ => {
                return Err(ConfigError::NotAMapping {
                    origin: self.origin(),
                    line: self.line(&root),
                    found: root.found(),
                })
            }
        };
        let (mut streams, mut unknown_keys, mut broken) = (BTreeMap::new(), vec![], vec![]);
        let mut seen = BTreeSet::new();
        for (key, value) in entries {
            let Kind::Str(name) = &key.kind else {
                return Err(ConfigError::InvalidStreamName {
                    origin: self.origin(),
                    line: self.line(key),
                    found: key.found(),
                });
            };
            if !seen.insert(name) {
                return Err(ConfigError::DuplicateStream {
                    origin: self.origin(),
                    line: self.line(key),
                    stream: name.clone(),
                });
            }
            let mut unknown = Vec::new();
            match self.stream(name, value, &mut unknown) {
                Ok(config) => {
                    streams.insert(name.clone(), config);
                    unknown_keys.append(&mut unknown);
                }
                Err(err) if lenient => broken.push(err),
                Err(err) => return Err(err),
            }
        }
        let origin = self.origin();
        let config = Config {
            streams,
            origin,
            unknown_keys,
        };
        Ok(Lenient { config, broken })
    }

    /// One stream's settings, with its unknown keys added to `unknown`.
    fn stream(
        &self,
        stream: &str,
        node: &Node,
        unknown: &mut Vec<UnknownKey>,
    ) -> Result<StreamConfig, ConfigError> {
        if !matches!(node.kind, Kind::Map(_)) {
            return Err(ConfigError::StreamNotAMapping {
                origin: self.origin(),
                line: self.line(node),
                stream: stream.to_owned(),
                found: node.found(),
            });
        }
        let [name, region, partition_key] = self.fields(stream, node, unknown)?;
        let missing = |field| ConfigError::MissingField {
            origin: self.origin(),
            stream: stream.to_owned(),
            field,
        };
        Ok(StreamConfig {
            name: name.ok_or_else(|| missing(NAME))?,
            partition_key,
            region: region.ok_or_else(|| missing(REGION))?,
        })
    }

    /// The fields of a settings mapping or of a merge source: explicit
    /// keys win over `<<` ones, and earlier merge sources over later ones.
    fn fields(
        &self,
        stream: &str,
        node: &Node,
        unknown: &mut Vec<UnknownKey>,
    ) -> Result<Fields, ConfigError> {
        let invalid = |field, expected, node: &Node| ConfigError::InvalidField {
            origin: self.origin(),
            line: self.line(node),
            stream: stream.to_owned(),
            field,
            expected,
            found: node.found(),
        };
        let Kind::Map(entries) = &node.kind else {
            return Err(invalid(MERGE, "a mapping or a sequence of mappings", node));
        };
        let (mut fields, mut merged, mut seen) = (Fields::default(), Fields::default(), [false; 3]);
        for (key, value) in entries {
            // Non-string keys cannot be known fields, so like any unknown
            // key they are ignored.
            let Kind::Str(key_text) = &key.kind else {
                continue;
            };
            let Some(i) = FIELDS.iter().position(|field| field == key_text) else {
                if key_text == MERGE {
                    let sources = match &value.kind {
                        Kind::Seq(items) => items.iter().collect(),
                        _ => vec![value],
                    };
                    for source in sources {
                        fill(&mut merged, self.fields(stream, source, unknown)?);
                    }
                    continue;
                }
                let key = UnknownKey {
                    stream: stream.to_owned(),
                    key: key_text.clone(),
                    closest: closest_key(key_text),
                };
                // A key merged from a shared anchor is reported once.
                if !unknown.contains(&key) {
                    unknown.push(key);
                }
                continue;
            };
            let field = FIELDS[i];
            if std::mem::replace(&mut seen[i], true) {
                return Err(ConfigError::DuplicateField {
                    origin: self.origin(),
                    line: self.line(key),
                    stream: stream.to_owned(),
                    field,
                });
            }
            // Required fields must be non-empty strings; the optional
            // `partition_key` also takes null or empty as "not set".
            fields[i] = match &value.kind {
                Kind::Str(text) if !text.trim().is_empty() => Some(text.clone()),
                Kind::Str(_) | Kind::Null if field == PARTITION_KEY => None,
                Kind::Str(_) => {
                    return Err(ConfigError::EmptyField {
                        origin: self.origin(),
                        line: self.line(value),
                        stream: stream.to_owned(),
                        field,
                    })
                }
                _ => return Err(invalid(field, "a string", value)),
            };
        }
        fill(&mut fields, merged);
        Ok(fields)
    }
}

/// The known key `key` is most likely a typo of: within two edits, or one
/// for short keys.
fn closest_key(key: &str) -> Option<&'static str> {
    FIELDS
        .into_iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), known))
        .filter(|&(distance, known)| distance <= if known.len() <= 4 { 1 } else { 2 })
        .min()
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/triton.yaml";

    const GOOD: &str = "\
user_activity:
  name: user_activity_v2
  partition_key: user_id
  region: us-west-1
billing:
  name: billing_events
  region: eu-central-1
";

    /// Parses text that must fail, returning the error and its message,
    /// which every case checks names the origin.
    fn fail(text: &str) -> (ConfigError, String) {
        match Config::parse(text, ORIGIN) {
            Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.starts_with(&format!("config {ORIGIN}")), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
                (err, msg)
            }
        }
    }

    #[test]
    fn happy_path() {
        let config = Config::parse(GOOD, ORIGIN).unwrap();
        assert_eq!(config.origin(), ORIGIN);
        let ua = config.stream("user_activity").unwrap();
        assert_eq!(
            ua,
            &StreamConfig {
                name: "user_activity_v2".into(),
                partition_key: Some("user_id".into()),
                region: "us-west-1".into(),
            }
        );
        assert_eq!(ua.partition_key(), Some("user_id"));
        let billing = config.stream("billing").unwrap();
        assert_eq!(billing.name, "billing_events");
        assert_eq!(billing.region, "eu-central-1");
        assert_eq!(billing.partition_key(), None);
        let names: Vec<&str> = config.streams().map(|(k, _)| k).collect();
        assert_eq!(names, ["billing", "user_activity"]);
    }

    #[test]
    fn flow_style_and_quoted_values() {
        let config = Config::parse("\"a b\": {name: 'x', region: \"r\"}\n", ORIGIN).unwrap();
        assert_eq!(config.stream("a b").unwrap().name, "x");
    }

    #[test]
    fn empty_mapping_has_no_streams() {
        let config = Config::parse("{}\n", ORIGIN).unwrap();
        assert_eq!(config.streams().count(), 0);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let text = "\
a:
  name: x
  region: r
  shard_count: 4
  tags: {team: data, extra: [1, 2]}
  5: five
  ? [complex, key]
  : value
  ? {k: v}
  : value
";
        let config = Config::parse(text, ORIGIN).unwrap();
        let a = config.stream("a").unwrap();
        assert_eq!((a.name.as_str(), a.region.as_str()), ("x", "r"));
    }

    #[test]
    fn unknown_keys_are_reported_with_the_closest_known_key() {
        let text = "\
a:
  name: x
  regoin: r
  region: r
  partitionkey: user_id
  shard_count: 4
";
        let config = Config::parse(text, ORIGIN).unwrap();
        let warnings: Vec<String> = config
            .unknown_keys()
            .iter()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            warnings,
            [
                "stream \"a\": unknown key \"regoin\" is ignored (did you mean \"region\"?)",
                "stream \"a\": unknown key \"partitionkey\" is ignored (did you mean \"partition_key\"?)",
                "stream \"a\": unknown key \"shard_count\" is ignored",
            ]
        );
    }

    #[test]
    fn a_broken_entry_does_not_stop_the_others() {
        let text = "\
good:
  name: g
  region: r
bad:
  name: b
other_bad:
  name: [1]
  region: r
also_good:
  name: a
  region: r
";
        // Strict loading refuses the file, naming the first broken entry.
        let strict = Config::parse(text, ORIGIN).unwrap_err().to_string();
        assert_eq!(
            strict,
            format!("config {ORIGIN}: stream \"bad\": field \"region\" is missing")
        );
        let lenient = Config::parse_lenient(text, ORIGIN).unwrap();
        let names: Vec<&str> = lenient.config.streams().map(|(k, _)| k).collect();
        assert_eq!(names, ["also_good", "good"]);
        let broken: Vec<String> = lenient.broken.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            broken,
            [
                format!("config {ORIGIN}: stream \"bad\": field \"region\" is missing"),
                format!("config {ORIGIN} line 7: stream \"other_bad\": field \"name\" must be a string, found sequence"),
            ]
        );
        // Errors of the file itself still fail it.
        assert!(Config::parse_lenient("a: [", ORIGIN).is_err());
        assert!(
            Config::parse_lenient("a:\n  name: x\n  region: r\na:\n  name: y\n", ORIGIN).is_err()
        );
    }

    #[test]
    fn a_duplicate_of_a_broken_entry_still_fails_the_file() {
        let text = "a:\n  name: x\nb:\n  name: y\n  region: r\na:\n  name: z\n  region: r\n";
        let err = Config::parse_lenient(text, ORIGIN).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("config {ORIGIN} line 6: stream \"a\" is defined more than once")
        );
    }

    /// The previous loader panicked inside serde_yaml ("unexpected end of
    /// mapping") on a tagged settings key, having left the tag unread.
    #[test]
    fn tagged_setting_keys_are_ignored() {
        let config = Config::parse("a:\n  !t k: v\n  name: x\n  region: r\n", ORIGIN).unwrap();
        assert_eq!(config.stream("a").unwrap().name, "x");
        assert!(config.unknown_keys().is_empty());
        let (_, msg) = fail("a:\n  name: x\n  !t k: v\n");
        assert!(msg.ends_with("field \"region\" is missing"), "{msg}");
    }

    #[test]
    fn empty_or_null_partition_key_is_absent() {
        for pk in ["", "''", "~", "null"] {
            let text = format!("a:\n  name: x\n  region: r\n  partition_key: {pk}\n");
            let config = Config::parse(&text, ORIGIN).unwrap();
            assert_eq!(config.stream("a").unwrap().partition_key(), None, "{pk:?}");
        }
    }

    #[test]
    fn empty_file() {
        for text in [
            "",
            "   \n\n",
            "# only a comment\n\n# another\n",
            "---\n",
            "~\n",
        ] {
            let (err, msg) = fail(text);
            assert!(
                matches!(err, ConfigError::Empty { .. }),
                "{text:?}: {err:?}"
            );
            assert_eq!(
                msg,
                format!(
                    "config {ORIGIN}: empty config file (expected a mapping of logical stream names to settings)"
                )
            );
        }
    }

    #[test]
    fn top_level_not_a_mapping() {
        let (err, msg) = fail("- a\n- b\n");
        assert!(
            matches!(err, ConfigError::NotAMapping { line: Some(1), .. }),
            "{err:?}"
        );
        assert!(msg.contains("line 1"), "{msg}");
        assert!(msg.contains("top level must be a mapping"), "{msg}");
        assert!(msg.contains("found sequence"), "{msg}");

        let (_, msg) = fail("just a string\n");
        assert!(msg.contains("found string"), "{msg}");
        let (_, msg) = fail("# header\n42\n");
        assert!(
            msg.contains("line 2") && msg.contains("found integer 42"),
            "{msg}"
        );
        let (_, msg) = fail("!tagged x\n");
        assert!(msg.contains("found tagged value"), "{msg}");
    }

    #[test]
    fn stream_not_a_mapping() {
        let (err, msg) = fail("good:\n  name: x\n  region: r\nuser_activity: user_activity_v2\n");
        assert!(
            matches!(&err, ConfigError::StreamNotAMapping { line: Some(4), stream, .. } if stream == "user_activity"),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!(
                "config {ORIGIN} line 4: stream \"user_activity\": settings must be a mapping, found string"
            )
        );
        let (_, msg) = fail("a:\n  - name\n  - region\n");
        assert!(
            msg.contains("line 2") && msg.contains("found sequence"),
            "{msg}"
        );
        let (_, msg) = fail("a:\n");
        assert!(
            msg.contains("stream \"a\"") && msg.contains("found null"),
            "{msg}"
        );
    }

    #[test]
    fn missing_fields() {
        let (err, msg) = fail("user_activity:\n  name: x\n");
        assert!(
            matches!(&err, ConfigError::MissingField { stream, field: "region", .. } if stream == "user_activity"),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!("config {ORIGIN}: stream \"user_activity\": field \"region\" is missing")
        );
        let (_, msg) = fail("user_activity:\n  region: r\n  partition_key: k\n");
        assert_eq!(
            msg,
            format!("config {ORIGIN}: stream \"user_activity\": field \"name\" is missing")
        );
        // An empty settings mapping is missing its name first.
        let (_, msg) = fail("a: {}\n");
        assert!(
            msg.contains("stream \"a\": field \"name\" is missing"),
            "{msg}"
        );
    }

    #[test]
    fn non_string_fields() {
        let (err, msg) = fail("user_activity:\n  name: 5\n  region: r\n");
        assert!(
            matches!(
                &err,
                ConfigError::InvalidField {
                    line: Some(2),
                    field: "name",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!(
                "config {ORIGIN} line 2: stream \"user_activity\": field \"name\" must be a string, found integer 5"
            )
        );
        let cases = [
            (
                "a:\n  name: x\n  region: [a]\n",
                "line 3",
                "region",
                "found sequence",
            ),
            (
                "a:\n  name: x\n  region:\n    - a\n",
                "line 4",
                "region",
                "found sequence",
            ),
            (
                "a:\n  name: true\n  region: r\n",
                "line 2",
                "name",
                "found boolean true",
            ),
            (
                "a:\n  name: 1.5\n  region: r\n",
                "line 2",
                "name",
                "found float 1.5",
            ),
            (
                "a:\n  name: -3\n  region: r\n",
                "line 2",
                "name",
                "found integer -3",
            ),
            (
                "a:\n  name: x\n  region:\n",
                "line 3",
                "region",
                "found null",
            ),
            (
                "a:\n  name: ~\n  region: r\n",
                "line 2",
                "name",
                "found null",
            ),
            (
                "a:\n  name: !env X\n  region: r\n",
                "line 2",
                "name",
                "found tagged value",
            ),
            (
                "a:\n  name: x\n  region: r\n  partition_key: {f: 1}\n",
                "line 4",
                "partition_key",
                "found mapping",
            ),
            (
                "a:\n  name: x\n  region: r\n  partition_key: 7\n",
                "line 4",
                "partition_key",
                "found integer 7",
            ),
        ];
        for (text, line, field, found) in cases {
            let (_, msg) = fail(text);
            assert!(
                msg.contains(&format!("config {ORIGIN} {line}: ")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains("stream \"a\""), "{text:?}: {msg}");
            assert!(
                msg.contains(&format!("field \"{field}\" must be a string, {found}")),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn empty_required_fields() {
        let (err, msg) = fail("a:\n  name: \"\"\n  region: r\n");
        assert!(
            matches!(
                &err,
                ConfigError::EmptyField {
                    line: Some(2),
                    field: "name",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!("config {ORIGIN} line 2: stream \"a\": field \"name\" must not be empty")
        );
        let (_, msg) = fail("a:\n  name: x\n  region: '  '\n");
        assert_eq!(
            msg,
            format!("config {ORIGIN} line 3: stream \"a\": field \"region\" must not be empty")
        );
    }

    #[test]
    fn duplicate_stream() {
        let (err, msg) = fail(
            "a:\n  name: x\n  region: r\nb:\n  name: y\n  region: r\na:\n  name: z\n  region: r\n",
        );
        assert!(
            matches!(&err, ConfigError::DuplicateStream { line: Some(7), stream, .. } if stream == "a"),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!("config {ORIGIN} line 7: stream \"a\" is defined more than once")
        );
    }

    #[test]
    fn duplicate_field() {
        let (err, msg) = fail("a:\n  name: x\n  region: r\n  name: y\n");
        assert!(
            matches!(
                &err,
                ConfigError::DuplicateField {
                    line: Some(4),
                    field: "name",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!("config {ORIGIN} line 4: stream \"a\": field \"name\" is set more than once")
        );
    }

    #[test]
    fn non_string_stream_names() {
        let (err, msg) = fail("good:\n  name: x\n  region: r\n5:\n  name: y\n  region: r\n");
        assert!(
            matches!(&err, ConfigError::InvalidStreamName { line: Some(4), .. }),
            "{err:?}"
        );
        assert_eq!(
            msg,
            format!(
                "config {ORIGIN} line 4: logical stream name must be a string, found integer 5 (quote it if it is meant as a name)"
            )
        );
        let (_, msg) = fail("true: {name: x, region: r}\n");
        assert!(msg.contains("found boolean true"), "{msg}");
        let (_, msg) = fail("~: {name: x, region: r}\n");
        assert!(msg.contains("found null"), "{msg}");
        let (_, msg) = fail("? [a, b]\n: {name: x, region: r}\n");
        assert!(msg.contains("found sequence"), "{msg}");
        // Quoted, it is a name like any other.
        let config = Config::parse("\"5\": {name: x, region: r}\n", ORIGIN).unwrap();
        assert_eq!(config.stream("5").unwrap().name, "x");
    }

    #[test]
    fn yaml_syntax_errors_carry_position() {
        let (err, msg) = fail("a:\n  name: x\n   region: r\n");
        match &err {
            ConfigError::Syntax { line, column, .. } => {
                assert_eq!(*line, Some(3));
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            msg.starts_with(&format!("config {ORIGIN}: invalid YAML: ")),
            "{msg}"
        );
        assert!(msg.contains("line 3 column"), "{msg}");

        let (err, msg) = fail("a: {name: x, region: r\n");
        assert!(
            matches!(err, ConfigError::Syntax { line: Some(_), .. }),
            "{err:?}"
        );
        assert!(msg.contains("line 2"), "{msg}");

        // Broken YAML inside an ignored key is still reported.
        let (err, _) = fail("a:\n  name: x\n  region: r\n  extra: [1, 2\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");

        let (err, msg) = fail("a: *nowhere\n");
        assert!(
            matches!(err, ConfigError::Syntax { line: Some(1), .. }),
            "{err:?}"
        );
        assert!(msg.contains("unknown anchor"), "{msg}");
    }

    #[test]
    fn several_documents_are_rejected() {
        let (err, msg) = fail("a: {name: x, region: r}\n---\nb: {name: y, region: r}\n");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
        assert!(msg.contains("more than one document"), "{msg}");
    }

    #[test]
    fn merge_keys_and_anchors() {
        let text = "\
a: &base
  name: a_v1
  region: us-west-1
  partition_key: user_id
b:
  <<: *base
  name: b_v1
c:
  <<: [{region: eu-west-1}, *base]
  name: c_v1
d:
  name: d_v1
  <<: {region: ap-south-1, partition_key: ''}
";
        let config = Config::parse(text, ORIGIN).unwrap();
        let b = config.stream("b").unwrap();
        assert_eq!(
            (b.name.as_str(), b.region.as_str(), b.partition_key()),
            ("b_v1", "us-west-1", Some("user_id"))
        );
        let c = config.stream("c").unwrap();
        assert_eq!(
            (c.name.as_str(), c.region.as_str(), c.partition_key()),
            ("c_v1", "eu-west-1", Some("user_id"))
        );
        let d = config.stream("d").unwrap();
        assert_eq!((d.region.as_str(), d.partition_key()), ("ap-south-1", None));

        let (err, msg) = fail("a:\n  name: x\n  <<: 5\n");
        assert!(
            matches!(
                err,
                ConfigError::InvalidField {
                    line: Some(3),
                    field: "<<",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            msg.contains("stream \"a\": field \"<<\" must be a mapping or a sequence of mappings, found integer 5"),
            "{msg}"
        );
        let (_, msg) = fail("a:\n  name: x\n  <<: [{region: r}, oops]\n");
        assert!(
            msg.contains("field \"<<\"") && msg.contains("found string"),
            "{msg}"
        );
        let (_, msg) = fail("a:\n  <<: {name: 5}\n  region: r\n");
        assert!(
            msg.contains("line 2") && msg.contains("field \"name\" must be a string"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_stream_lists_known_names() {
        let config = Config::parse(GOOD, ORIGIN).unwrap();
        let err = config.stream("user_activty").unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownStream { stream, .. } if stream == "user_activty")
        );
        assert_eq!(
            err.to_string(),
            format!(
                "config {ORIGIN}: unknown stream \"user_activty\" (known: billing, user_activity)"
            )
        );
        let empty = Config::parse("{}", "<reader>").unwrap();
        assert_eq!(
            empty.stream("x").unwrap_err().to_string(),
            "config <reader>: unknown stream \"x\" (known: (none))"
        );
    }

    /// A path in the temp dir that no other test or process uses.
    fn temp_path(tag: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "triton-config-{tag}-{}-{nanos}-{n}.yaml",
            std::process::id()
        ))
    }

    #[test]
    fn from_path_reads_file_and_names_it() {
        let path = temp_path("path");
        std::fs::write(&path, GOOD).unwrap();
        let loaded = Config::from_path(&path);
        std::fs::write(&path, "a:\n  name: x\n").unwrap();
        let broken = Config::from_path(&path);
        std::fs::remove_file(&path).unwrap();

        let config = loaded.unwrap();
        assert_eq!(config.origin(), path.display().to_string());
        assert_eq!(config.stream("billing").unwrap().name, "billing_events");
        let msg = broken.unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "config {}: stream \"a\": field \"region\" is missing",
                path.display()
            )
        );

        let err = Config::from_path(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert!(
            msg.starts_with(&format!("config {}: cannot read: ", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn from_reader_uses_label() {
        let config = Config::from_reader(GOOD.as_bytes(), "<stdin>").unwrap();
        assert_eq!(config.origin(), "<stdin>");
        assert_eq!(config.streams().count(), 2);

        let err = Config::from_reader(&b"a: \xff\n"[..], "<stdin>").unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("config <stdin>: cannot read: "),
            "{err}"
        );

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let err = Config::from_reader(Broken, "<pipe>").unwrap_err();
        assert_eq!(err.to_string(), "config <pipe>: cannot read: disk on fire");
    }

    /// Through the injectable value, not `std::env::set_var`: other test
    /// threads may read the environment meanwhile, which is unsound.
    #[test]
    fn from_env() {
        let unset = Config::from_env_value(None);
        let empty = Config::from_env_value(Some(OsString::new()));
        let path = temp_path("env");
        std::fs::write(&path, GOOD).unwrap();
        let set = Config::from_env_value(Some(path.clone().into_os_string()));
        std::fs::remove_file(&path).unwrap();

        for result in [unset, empty] {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::EnvNotSet {
                        var: "TRITON_CONFIG"
                    }
                ),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "config: environment variable TRITON_CONFIG is not set; it must name the stream config file"
            );
        }
        let config = set.unwrap();
        assert_eq!(config.origin(), path.display().to_string());
        assert_eq!(config.stream("user_activity").unwrap().region, "us-west-1");
    }
}
