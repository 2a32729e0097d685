use std::process::ExitCode;

use clap::Parser;
use telepresence_mock_server::cli::{self, Args};

fn main() -> ExitCode {
    cli::run(Args::parse())
}
