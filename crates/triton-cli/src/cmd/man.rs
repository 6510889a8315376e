//! `triton man`: manual pages in roff, from the clap definition.

use std::io::Write;

use clap::Args;
use clap_mangen::Man;

use crate::error::{CliError, CliResult};

/// Print a man page (roff) to standard output.
///
/// Without SUBCOMMAND: triton(1), the global options and the list of
/// subcommands; with one: that subcommand's page, triton-SUBCOMMAND(1),
/// with all its options. View one with `triton man | man -l -`, or install
/// them: `triton man > triton.1`, `triton man store > triton-store.1`, ...
/// into a man1 directory on MANPATH.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// The subcommand whose page to print [default: triton's own page].
    #[arg(value_name = "SUBCOMMAND")]
    subcommand: Option<String>,
}

/// Runs `triton man` for `cli`, the whole command line's definition.
pub fn run(args: ManArgs, cli: clap::Command) -> CliResult {
    let mut cli = cli.disable_help_subcommand(true);
    // Building names each subcommand's page (triton-store) and spreads the
    // global options into it.
    cli.build();
    let page = match &args.subcommand {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cli.get_subcommands().map(|s| s.get_name()).collect();
                return Err(CliError::new(format!(
                    "no subcommand {name:?}; man pages are of: {}",
                    names.join(", ")
                )));
            }
        },
    };
    let mut roff = Vec::new();
    Man::new(page)
        .render(&mut roff)
        .map_err(|e| CliError::io("rendering the man page", e))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&roff)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to standard output", e))
}
