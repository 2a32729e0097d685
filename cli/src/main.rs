//! `tpk`: why did (or didn't) my workstation get this Kafka message?
//!
//! - `tpk doctor` checks, where a consumer runs, what it depends on:
//!   Telepresence's environment, the API beside it, the topic and the groups.
//! - `tpk explain` says what each side decides for one message, and why.
//! - `tpk preview` reads the end of a topic and shows which messages an
//!   intercept would send to the workstation.
//!
//! Every command prints text for people, or one JSON document with `--json`.
//! Exit codes: 0 all is well, 1 a check failed or a message would be lost or
//! processed twice, 2 the question could not be answered (bad input, a
//! server that could not be asked).

mod doctor;
mod explain;
mod forwarding;
mod intercepts;
mod kafka;
mod message;
mod preview;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::report::Report;

#[derive(Debug, Parser)]
#[command(name = "tpk", version, about, max_term_width = 100)]
struct Cli {
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Telepresence's environment, its API and Kafka, where the consumer runs
    Doctor(Box<doctor::Args>),
    /// Say what each side decides for one message, and why
    Explain(Box<explain::Args>),
    /// Read the end of a topic and show which messages an intercept would take
    Preview(preview::Args),
}

/// The exit code when all is well.
const PASSED: u8 = 0;
/// The exit code when a check failed, or a message would be lost or doubled.
const FAILED: u8 = 1;
/// The exit code when the question could not be answered.
const UNANSWERED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return unanswered(cli.json, &anyhow::Error::from(error)),
    };
    let json = cli.json;
    runtime.block_on(async move {
        match cli.command {
            Command::Doctor(args) => emit(json, doctor::run(*args, json).await),
            Command::Explain(args) => emit(json, explain::run(*args).await),
            Command::Preview(args) => emit(json, preview::run(args, json).await),
        }
    })
}

/// Prints the report (or the error) and turns it into the exit code.
fn emit<R: Report>(json: bool, outcome: anyhow::Result<R>) -> ExitCode {
    let report = match outcome {
        Ok(report) => report,
        Err(error) => return unanswered(json, &error),
    };
    let printed = if json {
        report::print_json(&report)
    } else {
        report::print_text(&report)
    };
    if let Err(error) = printed {
        // A closed stdout (`tpk ... | head`) is no reason to panic.
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tpk: cannot print the report: {error}");
        }
    }
    ExitCode::from(match (report.answered(), report.passed()) {
        (false, _) => UNANSWERED,
        (true, true) => PASSED,
        (true, false) => FAILED,
    })
}

fn unanswered(json: bool, error: &anyhow::Error) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": format!("{error:#}") }));
    }
    eprintln!("tpk: error: {error:#}");
    ExitCode::from(UNANSWERED)
}
