//! Progress bars: drawn on standard error when it is a terminal (here a
//! pseudo-terminal made by Python's `pty` module), never with --quiet or
//! TRITON_QUIET, never when standard error is a pipe, and for `decode`
//! not when its records go to the terminal too.
//!
//! Deterministic: a finished bar is always drawn once with its final
//! numbers, however fast the command was.

use std::process::Output;

use crate::util::{fixture, path, python, triton, Dir, TestCommand, TRITON};

/// Runs `argv[3:]` with standard error on a new pseudo-terminal (120
/// columns) and standard output into the file `argv[1]` ("tty": the
/// terminal too), `argv[2]` extra environment as NAME=VALUE,...; prints
/// what reached the terminal and exits with the command's code.
const PTY_RUN: &str = r#"
import fcntl, os, pty, struct, subprocess, sys, termios
out_path, extra, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
env = dict(os.environ)
for pair in filter(None, extra.split(",")):
    name, value = pair.split("=", 1)
    env[name] = value
stdout = slave if out_path == "tty" else open(out_path, "wb")
child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=slave, env=env)
os.close(slave)
seen = []
while True:
    try:
        data = os.read(master, 65536)
    except OSError:  # EIO: the child's side is closed
        break
    if not data:
        break
    seen.append(data)
code = child.wait()
sys.stdout.buffer.write(b"".join(seen))
sys.exit(code)
"#;

/// `triton ARGS` with standard error on a terminal; stdout to `out` (or
/// the terminal with "tty"). Returns the exit status and what the terminal
/// showed.
fn on_terminal(out: &str, env: &str, args: &[&str]) -> (Output, String) {
    // Python passes its environment, cleaned as for `triton`, on.
    let o = TestCommand::program(python())
        .args(["-c", PTY_RUN, out, env, TRITON])
        .args(args)
        .output();
    let screen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.stderr.is_empty(),
        "pty helper: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o, screen)
}

/// The same, for a command that must succeed: what the terminal showed.
fn screen_of(out: &str, env: &str, args: &[&str]) -> String {
    let (o, screen) = on_terminal(out, env, args);
    assert!(o.status.success(), "{screen}");
    screen
}

#[test]
fn decode_and_encode_draw_progress_on_a_terminal_only() {
    let dir = Dir::new("progress");
    let archive = fixture("multiflush.tri");
    let json = dir.join("out.json");

    let screen = screen_of(path(&json), "", &["decode", path(&archive)]);
    // The last draw: the whole file (1,705,065 bytes) done.
    assert!(
        screen.contains("decode ["),
        "no progress on the terminal: {screen:?}"
    );
    assert!(screen.contains("1.63 MiB/1.63 MiB"), "{screen:?}");
    let go = std::fs::read(fixture("multiflush.json")).expect("go json");
    assert!(
        std::fs::read(&json).expect("output") == go,
        "records changed"
    );

    // Small files in small units, not 0.0 MB.
    let screen = screen_of(path(&json), "", &["decode", path(&fixture("small.tri"))]);
    assert!(screen.contains("4.58 KiB/4.58 KiB"), "{screen:?}");

    let archive_out = dir.join("out.tri");
    let screen = screen_of(
        "/dev/null",
        "",
        &[
            "encode",
            path(&fixture("multiflush.json")),
            "-o",
            path(&archive_out),
        ],
    );
    assert!(
        screen.contains("encode ["),
        "no progress on the terminal: {screen:?}"
    );
    assert!(screen.contains("4.15 MiB/4.15 MiB"), "{screen:?}");

    // --quiet, -q and TRITON_QUIET: nothing at all on the terminal.
    for (env, flag) in [("", "--quiet"), ("", "-q"), ("TRITON_QUIET=1", "decode")] {
        let mut args = vec![flag, "decode", path(&archive)];
        if flag == "decode" {
            args.remove(0);
        }
        let screen = screen_of(path(&json), env, &args);
        assert_eq!(screen, "", "{env} {flag}");
    }
    let screen = screen_of(
        "/dev/null",
        "",
        &[
            "encode",
            "-q",
            path(&fixture("small.json")),
            "-o",
            path(&archive_out),
        ],
    );
    assert_eq!(screen, "");

    // Records on the terminal too: no bar between them.
    let screen = screen_of("tty", "", &["decode", path(&fixture("small.tri"))]);
    assert!(
        screen.contains("\"kind\":\"ascii\"") && !screen.contains("decode ["),
        "{screen:?}"
    );

    // Standard error to a pipe: clean.
    for args in [
        vec!["decode", path(&archive)],
        vec![
            "encode",
            path(&fixture("small.json")),
            "-o",
            path(&archive_out),
        ],
    ] {
        let o = triton().args(&args).output();
        assert!(o.status.success(), "{args:?}");
        assert!(
            o.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A failing decode on a terminal: the error line is whole, on a line of
/// its own.
#[test]
fn decode_errors_on_a_terminal_stay_one_line() {
    let (o, screen) = on_terminal("/dev/null", "", &["decode", path(&fixture("notmap.tri"))]);
    assert_eq!(o.status.code(), Some(1), "{screen}");
    // The bar is cleared (erase line) before the error is printed, and
    // the error ends its line.
    let at = screen
        .find("\x1b[2Ktriton: ")
        .unwrap_or_else(|| panic!("no error after a cleared line: {screen:?}"));
    let error = screen[at + 4..].split("\r\n").next().expect("a line");
    assert!(
        error.ends_with(
            "notmap.tri: byte 10 (record 1): invalid record at decompressed byte 5: \
             a record must be a map, found array"
        ),
        "{screen:?}"
    );
    assert!(!error.contains('\r'), "{screen:?}");
}
