//! The Kinesis adapter against a real local Kinesis server (kinesalite,
//! started by `scripts/services`, which `scripts/test` runs), with the real
//! SDK client. Faults are injected into the client's responses.

mod faults;
mod kpl;
mod producer;
mod reader;
mod support;
