//! `triton completions`: a shell completion script, from the clap
//! definition.

use std::io::Write;

use clap::Args;
use clap_complete::Shell;

use crate::error::{CliError, CliResult};

/// Print a shell completion script for triton to standard output.
///
/// Save it where the shell looks for completions, for instance:
///
/// bash: triton completions bash >
/// ~/.local/share/bash-completion/completions/triton
///
/// zsh: triton completions zsh > ~/.zfunc/_triton (with fpath+=~/.zfunc
/// before compinit in ~/.zshrc)
///
/// fish: triton completions fish > ~/.config/fish/completions/triton.fish
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// Runs `triton completions` for `cli`, the whole command line's definition.
pub fn run(args: CompletionsArgs, mut cli: clap::Command) -> CliResult {
    // Into memory first: the generator panics on a failed write (such as a
    // closed pipe), and our write reports it instead.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "triton", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to standard output", e))
}
