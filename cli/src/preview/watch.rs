//! `--watch`: the updates, and the signals that end them.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Outcome;
use crate::report::Report;

/// How the updates are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Redrawn in place.
    Terminal,
    /// A new report after the previous one: stdout is a file or a pipe,
    /// where escape sequences would be noise.
    Text,
    /// One JSON document per line.
    Json,
}

/// Where the updates go: stdout.
#[derive(Debug)]
pub(super) struct Screen {
    mode: Mode,
    /// On a terminal, the update as a progress bar's message: indicatif
    /// redraws it in place, counting the lines that the terminal wraps,
    /// which escape sequences written here could not know.
    live: Option<ProgressBar>,
    shown: u64,
}

impl Screen {
    /// Updates as JSON lines, redrawn on a terminal, else appended.
    pub(super) fn new(json: bool) -> Self {
        let mode = if json {
            Mode::Json
        } else if io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Text
        };
        Self {
            mode,
            live: None,
            shown: 0,
        }
    }

    /// The least time between two updates: a terminal redraws in place and
    /// can follow quickly; a file or a program gets at most one a second.
    pub(super) fn min_interval(&self) -> Duration {
        match self.mode {
            Mode::Terminal => Duration::from_millis(250),
            Mode::Text | Mode::Json => Duration::from_secs(1),
        }
    }

    /// Shows `outcome` in place of the previous update.
    pub(super) fn show(&mut self, outcome: &Outcome) -> io::Result<()> {
        self.shown += 1;
        if self.mode == Mode::Terminal {
            let mut text = Vec::new();
            outcome.render(&mut text)?;
            let text = String::from_utf8_lossy(&text).trim_end().to_owned();
            let live = self.live.get_or_insert_with(|| {
                let live = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
                live.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
                live
            });
            live.set_message(text);
            return Ok(());
        }
        let mut out = io::stdout().lock();
        if self.mode == Mode::Json {
            serde_json::to_writer(&mut out, outcome)?;
            writeln!(out)?;
        } else {
            if self.shown > 1 {
                writeln!(out)?;
            }
            outcome.render(&mut out)?;
        }
        out.flush()
    }

    /// Erases the last update on a terminal, for the final report to take
    /// its place.
    pub(super) fn clear(&mut self) {
        if let Some(live) = self.live.take() {
            live.finish_and_clear();
        }
    }
}

/// SIGTERM and Ctrl-C, listened for from the moment this is built.
pub(super) struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening: from now on, the signals no longer kill the process.
    pub(super) fn install() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal.
    pub(super) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
