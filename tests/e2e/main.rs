//! End-to-end tests across triton's crates, one binary with modules by topic.

mod compat;
mod robustness;
mod roundtrip;
