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

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
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
        let path = path.as_ref();
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &origin),
            Err(error) => Err(ConfigError::Io { origin, error }),
        }
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
        match std::env::var_os(CONFIG_ENV) {
            Some(path) if !path.is_empty() => Config::from_path(path),
            _ => Err(ConfigError::EnvNotSet { var: CONFIG_ENV }),
        }
    }

    /// Parses and validates config text; `origin` is what error messages
    /// will call it.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_skipping(text, origin, BTreeSet::new())
    }

    /// Loads the file at `path` as [`Config::parse_lenient`] does.
    pub fn from_path_lenient(path: impl AsRef<Path>) -> Result<Lenient, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse_lenient(&text, &origin),
            Err(error) => Err(ConfigError::Io { origin, error }),
        }
    }

    /// Like [`Config::parse`], except that a broken stream entry (a missing
    /// or invalid field) does not fail the whole file: its error is
    /// returned beside the valid streams, so that one team's typo in a
    /// shared config does not stop the commands of every other stream.
    /// Errors of the file itself (YAML syntax, a duplicate stream) still
    /// fail it.
    pub fn parse_lenient(text: &str, origin: &str) -> Result<Lenient, ConfigError> {
        let mut skip = BTreeSet::new();
        let mut broken = Vec::new();
        loop {
            // Each pass parses the unchanged text, so the line numbers of
            // later errors stay true; a file has few streams.
            match Config::parse_skipping(text, origin, skip.clone()) {
                Ok(config) => return Ok(Lenient { config, broken }),
                Err(e) => match e.stream() {
                    Some(stream) if !skip.contains(stream) => {
                        skip.insert(stream.to_owned());
                        broken.push(e);
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    fn parse_skipping(
        text: &str,
        origin: &str,
        skip: BTreeSet<String>,
    ) -> Result<Config, ConfigError> {
        let ctx = Ctx {
            skip,
            ..Ctx::default()
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let seed = TopSeed { ctx: &ctx };
        match seed.deserialize(de) {
            Ok(streams) => Ok(Config {
                streams,
                origin: origin.to_owned(),
                unknown_keys: ctx.unknown.take(),
            }),
            Err(err) => {
                let location = err.location();
                let line = location.as_ref().map(|l| l.line());
                // A recorded problem means one of our checks failed and the
                // serde error only carries its position; anything else is
                // the parser's own complaint, passed on verbatim.
                match ctx.problem.borrow_mut().take() {
                    Some(problem) => Err(problem.into_error(origin, line)),
                    None => Err(ConfigError::Syntax {
                        origin: origin.to_owned(),
                        line,
                        column: location.as_ref().map(|l| l.column()),
                        message: err.to_string(),
                    }),
                }
            }
        }
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
    #[error("config {origin}{}: top level must be a mapping of logical stream names to settings, found {found}", At(*.line))]
    NotAMapping {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What was there instead, e.g. `sequence`.
        found: String,
    },
    /// A top-level key is not a string.
    #[error("config {origin}{}: logical stream name must be a string, found {found} (quote it if it is meant as a name)", At(*.line))]
    InvalidStreamName {
        /// Path or label of the config.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What was there instead, e.g. `integer 5`.
        found: String,
    },
    /// The same logical stream name appears twice.
    #[error("config {origin}{}: stream {stream:?} is defined more than once", At(*.line))]
    DuplicateStream {
        /// Path or label of the config.
        origin: String,
        /// 1-based line of the second definition, when known.
        line: Option<usize>,
        /// Logical stream name.
        stream: String,
    },
    /// A stream's value is not a mapping of settings.
    #[error("config {origin}{}: stream {stream:?}: settings must be a mapping, found {found}", At(*.line))]
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
    #[error("config {origin}{}: stream {stream:?}: field {field:?} must be {expected}, found {found}", At(*.line))]
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
    #[error("config {origin}{}: stream {stream:?}: field {field:?} must not be empty", At(*.line))]
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
    #[error("config {origin}{}: stream {stream:?}: field {field:?} is set more than once", At(*.line))]
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

/// Renders an optional line as ` line N` right after the origin.
struct At(Option<usize>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, " line {line}"),
            None => Ok(()),
        }
    }
}

const NAME: &str = "name";
const REGION: &str = "region";
const PARTITION_KEY: &str = "partition_key";
const MERGE: &str = "<<";

/// A failed check, recorded beside the serde error because serde errors can
/// only carry text; serde_yaml supplies the position of the node whose
/// visitor failed.
enum Problem {
    Empty,
    NotAMapping(String),
    InvalidStreamName(String),
    DuplicateStream(String),
    StreamNotAMapping(String, String),
    MissingField(String, &'static str),
    InvalidField(String, &'static str, &'static str, String),
    EmptyField(String, &'static str),
    DuplicateField(String, &'static str),
}

impl Problem {
    fn into_error(self, origin: &str, line: Option<usize>) -> ConfigError {
        let origin = origin.to_owned();
        match self {
            Problem::Empty => ConfigError::Empty { origin },
            Problem::NotAMapping(found) => ConfigError::NotAMapping {
                origin,
                line,
                found,
            },
            Problem::InvalidStreamName(found) => ConfigError::InvalidStreamName {
                origin,
                line,
                found,
            },
            Problem::DuplicateStream(stream) => ConfigError::DuplicateStream {
                origin,
                line,
                stream,
            },
            Problem::StreamNotAMapping(stream, found) => ConfigError::StreamNotAMapping {
                origin,
                line,
                stream,
                found,
            },
            // The position serde_yaml reports here is the start of the
            // stream's settings, not the key, which would mislead more than
            // help; the stream name is unique and enough to find it.
            Problem::MissingField(stream, field) => ConfigError::MissingField {
                origin,
                stream,
                field,
            },
            Problem::InvalidField(stream, field, expected, found) => ConfigError::InvalidField {
                origin,
                line,
                stream,
                field,
                expected,
                found,
            },
            Problem::EmptyField(stream, field) => ConfigError::EmptyField {
                origin,
                line,
                stream,
                field,
            },
            Problem::DuplicateField(stream, field) => ConfigError::DuplicateField {
                origin,
                line,
                stream,
                field,
            },
        }
    }
}

#[derive(Default)]
struct Ctx {
    problem: RefCell<Option<Problem>>,
    /// Streams to pass over (see [`Config::parse_lenient`]).
    skip: BTreeSet<String>,
    unknown: RefCell<Vec<UnknownKey>>,
}

impl Ctx {
    /// Records `problem` and returns the error that unwinds the parse from
    /// the current node, so serde_yaml stamps that node's position on it.
    fn fail<T, E: de::Error>(&self, problem: Problem) -> Result<T, E> {
        *self.problem.borrow_mut() = Some(problem);
        Err(E::custom("invalid stream config"))
    }
}

/// Implements every `visit_*` that serde_yaml's `deserialize_any` can call
/// and the visitor does not handle itself by calling
/// `self.other(description)`, so each visitor only spells out what it
/// accepts.
macro_rules! route_other_kinds {
    ($($kind:ident),*) => { $( route_other_kinds!(@ $kind); )* };
    (@ bool) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            self.other(format!("boolean {v}"))
        }
    };
    (@ int) => {
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.other(format!("integer {v}"))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.other(format!("integer {v}"))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            self.other(format!("integer {v}"))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            self.other(format!("integer {v}"))
        }
    };
    (@ float) => {
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            self.other(format!("float {v}"))
        }
    };
    (@ str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            self.other("string".to_owned())
        }
    };
    (@ null) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            self.other("null".to_owned())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            self.other("null".to_owned())
        }
    };
    (@ seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            self.other("sequence".to_owned())
        }
    };
    (@ map) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            self.other("mapping".to_owned())
        }
    };
    (@ tagged) => {
        fn visit_enum<A: EnumAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            self.other("tagged value".to_owned())
        }
    };
}

/// The whole document: logical name -> settings.
struct TopSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = BTreeMap<String, StreamConfig>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl TopSeed<'_> {
    fn other<T, E: de::Error>(self, found: String) -> Result<T, E> {
        self.ctx.fail(Problem::NotAMapping(found))
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = BTreeMap<String, StreamConfig>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of logical stream names to settings")
    }

    // serde_yaml reports a document without content as none, and `---`
    // alone or `~` as unit: all three mean there is nothing configured.
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.ctx.fail(Problem::Empty)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.ctx.fail(Problem::Empty)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut streams = BTreeMap::new();
        while let Some(logical) = map.next_key_seed(StreamKeySeed {
            ctx: self.ctx,
            seen: &streams,
        })? {
            if self.ctx.skip.contains(&logical) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let settings = map.next_value_seed(StreamSeed {
                ctx: self.ctx,
                stream: &logical,
            })?;
            streams.insert(logical, settings);
        }
        Ok(streams)
    }

    route_other_kinds!(bool, int, float, str, seq, tagged);
}

/// A logical stream name; duplicates are caught here, while the parser is
/// still at the key, so the error points at the second definition.
struct StreamKeySeed<'c> {
    ctx: &'c Ctx,
    seen: &'c BTreeMap<String, StreamConfig>,
}

impl<'de> DeserializeSeed<'de> for StreamKeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl StreamKeySeed<'_> {
    fn other<T, E: de::Error>(self, found: String) -> Result<T, E> {
        self.ctx.fail(Problem::InvalidStreamName(found))
    }
}

impl<'de> Visitor<'de> for StreamKeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a logical stream name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if self.seen.contains_key(v) {
            return self.ctx.fail(Problem::DuplicateStream(v.to_owned()));
        }
        Ok(v.to_owned())
    }

    route_other_kinds!(bool, int, float, null, seq, map, tagged);
}

/// Field values gathered from one settings mapping, before the required
/// ones are checked (they may still come from a `<<` merge).
#[derive(Default)]
struct Fields {
    name: Option<String>,
    region: Option<String>,
    partition_key: Option<String>,
}

impl Fields {
    /// Fills what is still unset from `other`: YAML merge semantics, where
    /// explicit keys and earlier merge sources win.
    fn fill_from(&mut self, other: Fields) {
        self.name = self.name.take().or(other.name);
        self.region = self.region.take().or(other.region);
        self.partition_key = self.partition_key.take().or(other.partition_key);
    }
}

/// One stream's settings, checked for the required fields.
struct StreamSeed<'c> {
    ctx: &'c Ctx,
    stream: &'c str,
}

impl<'de> DeserializeSeed<'de> for StreamSeed<'_> {
    type Value = StreamConfig;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        let fields = de.deserialize_any(FieldsVisitor {
            ctx: self.ctx,
            stream: self.stream,
            merging: false,
        })?;
        let Fields {
            name,
            region,
            partition_key,
        } = fields;
        let missing = |field| {
            self.ctx
                .fail(Problem::MissingField(self.stream.to_owned(), field))
        };
        let name = match name {
            Some(name) => name,
            None => return missing(NAME),
        };
        let region = match region {
            Some(region) => region,
            None => return missing(REGION),
        };
        Ok(StreamConfig {
            name,
            partition_key,
            region,
        })
    }
}

/// A settings mapping; also used for the sources of a `<<` merge key, which
/// go-triton's yaml.v2 honoured, so settings shared through anchors keep
/// working.
struct FieldsVisitor<'c> {
    ctx: &'c Ctx,
    stream: &'c str,
    merging: bool,
}

impl FieldsVisitor<'_> {
    fn other<T, E: de::Error>(self, found: String) -> Result<T, E> {
        let stream = self.stream.to_owned();
        if self.merging {
            self.ctx
                .fail(Problem::InvalidField(stream, MERGE, MERGE_EXPECTED, found))
        } else {
            self.ctx.fail(Problem::StreamNotAMapping(stream, found))
        }
    }
}

const MERGE_EXPECTED: &str = "a mapping or a sequence of mappings";

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of stream settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        let mut merged = Fields::default();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(FieldKeySeed {
            ctx: self.ctx,
            stream: self.stream,
            seen: &seen,
        })? {
            let value = |field, required| StrSeed {
                ctx: self.ctx,
                stream: self.stream,
                field,
                required,
            };
            match key {
                Setting::Name => {
                    seen.name = true;
                    fields.name = map.next_value_seed(value(NAME, true))?;
                }
                Setting::Region => {
                    seen.region = true;
                    fields.region = map.next_value_seed(value(REGION, true))?;
                }
                Setting::PartitionKey => {
                    seen.partition_key = true;
                    fields.partition_key = map.next_value_seed(value(PARTITION_KEY, false))?;
                }
                Setting::Merge => {
                    let sources = map.next_value_seed(MergeSeed {
                        ctx: self.ctx,
                        stream: self.stream,
                    })?;
                    merged.fill_from(sources);
                }
                // Ignored, as go-triton did; IgnoredAny still walks the
                // value so syntax errors inside it are reported.
                Setting::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        fields.fill_from(merged);
        Ok(fields)
    }

    route_other_kinds!(bool, int, float, str, null, seq, tagged);
}

/// Which known fields one mapping has set so far.
#[derive(Default)]
struct Seen {
    name: bool,
    region: bool,
    partition_key: bool,
}

enum Setting {
    Name,
    Region,
    PartitionKey,
    Merge,
    Other,
}

/// A settings key; repeats of known fields are caught here so the error
/// points at the second occurrence.
struct FieldKeySeed<'c> {
    ctx: &'c Ctx,
    stream: &'c str,
    seen: &'c Seen,
}

impl<'de> DeserializeSeed<'de> for FieldKeySeed<'_> {
    type Value = Setting;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl FieldKeySeed<'_> {
    /// Non-string keys cannot be known fields, so like any unknown key they
    /// are ignored.
    fn other<E: de::Error>(self, _found: String) -> Result<Setting, E> {
        Ok(Setting::Other)
    }
}

impl<'de> Visitor<'de> for FieldKeySeed<'_> {
    type Value = Setting;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a setting name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let (key, field, seen) = match v {
            NAME => (Setting::Name, NAME, self.seen.name),
            REGION => (Setting::Region, REGION, self.seen.region),
            PARTITION_KEY => (
                Setting::PartitionKey,
                PARTITION_KEY,
                self.seen.partition_key,
            ),
            MERGE => return Ok(Setting::Merge),
            _ => {
                let unknown = UnknownKey {
                    stream: self.stream.to_owned(),
                    key: v.to_owned(),
                    closest: closest_key(v),
                };
                let mut seen = self.ctx.unknown.borrow_mut();
                // A key merged into several streams is reported for each,
                // but once per stream.
                if !seen.contains(&unknown) {
                    seen.push(unknown);
                }
                return Ok(Setting::Other);
            }
        };
        if seen {
            return self
                .ctx
                .fail(Problem::DuplicateField(self.stream.to_owned(), field));
        }
        Ok(key)
    }

    // Complex keys (`? [a, b]`) must still be consumed to move on.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Setting::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Setting::Other)
    }

    route_other_kinds!(bool, int, float, null, tagged);
}

/// The known key `key` is most likely a typo of: within two edits, or one
/// for short keys.
fn closest_key(key: &str) -> Option<&'static str> {
    [NAME, REGION, PARTITION_KEY]
        .into_iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), known))
        .filter(|&(distance, known)| distance <= if known.len() <= 4 { 1 } else { 2 })
        .min()
        .map(|(_, known)| known)
}

/// A string setting. Required ones must be non-empty strings; the optional
/// `partition_key` also accepts null or empty as "not set".
struct StrSeed<'c> {
    ctx: &'c Ctx,
    stream: &'c str,
    field: &'static str,
    required: bool,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl StrSeed<'_> {
    fn other<T, E: de::Error>(self, found: String) -> Result<T, E> {
        self.ctx.fail(Problem::InvalidField(
            self.stream.to_owned(),
            self.field,
            "a string",
            found,
        ))
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match (v.trim().is_empty(), self.required) {
            (false, _) => Ok(Some(v.to_owned())),
            (true, false) => Ok(None),
            (true, true) => self
                .ctx
                .fail(Problem::EmptyField(self.stream.to_owned(), self.field)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        if self.required {
            self.other("null".to_owned())
        } else {
            Ok(None)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    route_other_kinds!(bool, int, float, seq, map, tagged);
}

/// The value of a `<<` key: one mapping, or a sequence of them where
/// earlier entries win.
struct MergeSeed<'c> {
    ctx: &'c Ctx,
    stream: &'c str,
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl MergeSeed<'_> {
    fn source(&self) -> FieldsVisitor<'_> {
        FieldsVisitor {
            ctx: self.ctx,
            stream: self.stream,
            merging: true,
        }
    }

    fn other<T, E: de::Error>(self, found: String) -> Result<T, E> {
        self.ctx.fail(Problem::InvalidField(
            self.stream.to_owned(),
            MERGE,
            MERGE_EXPECTED,
            found,
        ))
    }
}

impl<'de> Visitor<'de> for MergeSeed<'_> {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MERGE_EXPECTED)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.source().visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(source) = seq.next_element_seed(MergeSourceSeed(self.source()))? {
            fields.fill_from(source);
        }
        Ok(fields)
    }

    route_other_kinds!(bool, int, float, str, null, tagged);
}

/// One entry of a `<<` sequence; must be a mapping itself.
struct MergeSourceSeed<'c>(FieldsVisitor<'c>);

impl<'de> DeserializeSeed<'de> for MergeSourceSeed<'_> {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self.0)
    }
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

    /// The only test touching the environment, so tests running in parallel
    /// never see each other's changes.
    #[test]
    fn from_env() {
        let saved = std::env::var_os(CONFIG_ENV);

        std::env::remove_var(CONFIG_ENV);
        let unset = Config::from_env();
        std::env::set_var(CONFIG_ENV, "");
        let empty = Config::from_env();
        let path = temp_path("env");
        std::fs::write(&path, GOOD).unwrap();
        std::env::set_var(CONFIG_ENV, &path);
        let set = Config::from_env();
        std::fs::remove_file(&path).unwrap();

        match saved {
            Some(value) => std::env::set_var(CONFIG_ENV, value),
            None => std::env::remove_var(CONFIG_ENV),
        }

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
