//! One module per subcommand.

pub mod audit;
pub mod aws;
pub mod cat;
pub mod common;
pub mod completions;
pub mod convert;
pub mod decode;
pub mod encode;
pub mod envelope;
pub mod leases;
pub mod man;
pub mod metrics;
pub mod parse;
pub mod put;
pub mod replay;
pub mod shards;
pub mod signals;
pub mod stats;
pub mod store;
pub mod systemd;
pub mod tail;
