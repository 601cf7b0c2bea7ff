//! `sqz`: the command-line front of the toolkit. Logic lives in the `host` library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = host::cli::Cli::parse();
    match host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
