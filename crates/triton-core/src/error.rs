//! Reporting errors with their causes.
//!
//! Errors of triton keep what caused them as [`source`](Error::source)
//! chains (so that a caller can look for a throttled Kinesis call behind a
//! source's outage) and say only their own part in `Display`. [`Report`]
//! prints the whole chain on one line, as logs and the CLI show it.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A boxed cause, as errors that wrap another error of any kind hold it.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Displays an error and its causes on one line, joined by `": "` (like
/// anyhow's `{:#}`).
///
/// ```
/// use triton_core::error::Report;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("reading events.tri")]
/// struct Reading(#[source] std::io::Error);
///
/// let e = Reading(std::io::Error::other("disk on fire"));
/// assert_eq!(Report(&e).to_string(), "reading events.tri: disk on fire");
/// ```
///
/// A cause whose text the line already holds (an error that prints its
/// cause and returns it as `source()` too) is not repeated.
pub struct Report<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(e) = cause {
            // Some errors (tokio-postgres's, the SDK's) print their cause
            // and return it as source() too: say it once.
            let text = e.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = e.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The first error of `e`'s chain (`e` itself included) of type `T`.
pub fn find_cause<'a, T: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cause = e.source();
    }
    None
}

/// An error with what was being done when it happened (`reading shard 3`,
/// an archive key): the context is its message, the error its source.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct Context {
    context: String,
    #[source]
    source: BoxError,
}

impl Context {
    /// `source`, which happened while doing `context`.
    pub fn new(context: impl Into<String>, source: impl Into<BoxError>) -> Context {
        Context {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// An error that is reported more than once (a failure every later call
/// returns again): cloning shares it, its chain stays whole.
#[derive(Clone, Debug)]
pub struct SharedError(Arc<dyn Error + Send + Sync + 'static>);

impl SharedError {
    /// Shares `e`.
    pub fn new(e: impl Into<BoxError>) -> SharedError {
        SharedError(Arc::from(e.into()))
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for SharedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    /// Prints its cause and returns it too, as tokio-postgres's errors do.
    #[derive(Debug, thiserror::Error)]
    #[error("inner: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn a_chain_is_one_line_and_says_each_cause_once() {
        let e = Outer(Inner(std::io::Error::other("refused")));
        assert_eq!(Report(&e).to_string(), "outer: inner: refused");
        let shared = SharedError::new(Context::new("shard 1", e));
        assert_eq!(
            Report(&shared.clone()).to_string(),
            "shard 1: outer: inner: refused"
        );
        assert!(find_cause::<std::io::Error>(&shared).is_some());
        assert!(find_cause::<std::fmt::Error>(&shared).is_none());
    }
}
