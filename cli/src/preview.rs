//! `tpk preview` (being written).

use std::io::{self, Write};

use serde::Serialize;

use crate::report::Report;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

#[derive(Debug, Serialize)]
pub(crate) struct Outcome {}

impl Report for Outcome {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "not yet")
    }

    fn passed(&self) -> bool {
        false
    }
}

pub(crate) async fn run(_args: Args, _json: bool) -> anyhow::Result<Outcome> {
    anyhow::bail!("tpk preview is not written yet")
}
