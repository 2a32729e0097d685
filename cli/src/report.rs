//! What every command prints: text for people, or one JSON document.

use std::io::{self, Write};

use serde::Serialize;

/// A command's result.
pub(crate) trait Report: Serialize {
    /// Writes the text form.
    fn render(&self, out: &mut dyn Write) -> io::Result<()>;

    /// Whether the exit code is 0.
    fn passed(&self) -> bool;

    /// Whether the question was answered at all; if not, the exit code is 2
    /// whatever [`passed`](Self::passed) says.
    fn answered(&self) -> bool {
        true
    }
}

pub(crate) fn print_text(report: &impl Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    report.render(&mut out)?;
    out.flush()
}

pub(crate) fn print_json(report: &impl Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, report)?;
    writeln!(out)?;
    out.flush()
}
