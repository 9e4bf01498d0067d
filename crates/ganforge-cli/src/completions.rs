//! `ganforge completions SHELL`: a completion script made from the same clap definitions as
//! the parser, so it cannot fall out of step with the flags.

use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Writes the script for `cmd` (the whole command line) to standard output.
pub fn run(a: CompletionsArgs, cmd: &mut clap::Command) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(a.shell, cmd, name, &mut std::io::stdout());
}
