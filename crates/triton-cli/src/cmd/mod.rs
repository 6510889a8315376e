//! One module per subcommand.

pub mod audit;
pub mod cat;
pub mod common;
pub mod decode;
pub mod encode;
pub mod leases;
pub mod metrics;
pub mod put;
pub mod shards;
pub mod signals;
pub mod stats;
pub mod store;
pub mod tail;
