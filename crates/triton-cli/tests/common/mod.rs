//! Helpers shared by the CLI tests that use the local Kinesis server.
#![allow(dead_code)] // each test binary uses part of it

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};

pub fn endpoint() -> String {
    triton_tests::local_endpoint("AWS_ENDPOINT_URL_KINESIS")
}

/// One Kinesis JSON call by hand (kinesalite checks the form of the
/// signature, not its value); returns the status code.
pub fn call(target: &str, body: &str) -> u16 {
    let url = endpoint();
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).expect("connect to kinesalite");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=triton-local/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {response}"))
}

pub struct Stream {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub name: String,
}

/// A fresh stream of `shards` shards, and a config naming it `events`.
pub fn stream(tag: &str, shards: u32) -> Stream {
    let name = format!("cli-{tag}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let status = call(
        "CreateStream",
        &format!(r#"{{"StreamName":"{name}","ShardCount":{shards}}}"#),
    );
    assert_eq!(status, 200, "CreateStream {name}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let config = dir.join("triton.yaml");
    std::fs::write(
        &config,
        format!("events:\n  name: {name}\n  partition_key: user\n  region: us-east-1\n"),
    )
    .unwrap();
    Stream { dir, config, name }
}

impl Stream {
    /// `triton ARGS --stream events`, with this stream's config and none
    /// of the caller's TRITON_ variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_triton"));
        c.env_remove("RUST_LOG")
            .env_remove("TRITON_CLIENT")
            .env_remove("TRITON_DB")
            .env_remove("TRITON_BUCKET")
            .env("TRITON_CONFIG", &self.config)
            .args(args)
            .args(["--stream", "events"]);
        c
    }

    pub fn triton(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run triton")
    }

    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}
