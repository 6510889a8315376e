//! Test helpers for anything built on an [`ArchiveStore`](crate::ArchiveStore)
//! (feature `test-util`), in the style of object_store's `throttle.rs` and
//! `integration.rs`:
//!
//! - [`FaultyStore`]: a store that fails chosen operations, a given number
//!   of times or for the keys a predicate picks, with a given
//!   [`ErrorKind`](crate::ErrorKind);
//! - [`ThrottledStore`]: a store that waits before each operation;
//! - [`conformance`]: what every store must do, as functions that panic
//!   naming the broken rule, run against [`LocalStore`](crate::LocalStore)
//!   and [`S3Store`](crate::S3Store) by this crate's tests.

pub mod conformance;
mod faults;
mod throttle;

pub use self::faults::{FaultyStore, Op};
pub use self::throttle::{ThrottleConfig, ThrottledStore};
