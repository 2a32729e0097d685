//! `tpk preview`: before starting an intercept, which messages of a topic
//! would reach the workstation?
//!
//! Reads the last `--last` messages of each partition without joining a
//! consumer group ([`read`]), asks who would process each one, offline with
//! the mock server's decision code or live from both sides' APIs
//! ([`judge`](mod@judge)), counts per side, per header value, and keeps samples
//! ([`tally`]); prints it ([`render`]), once or, with `--watch`, as new
//! messages come ([`watch`]).

mod judge;
mod read;
mod render;
mod tally;
mod watch;

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http::HeaderName;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use telepresence_kafka::HeaderForwarding;
use telepresence_mock_server::cli::WorkloadArgs;
use tokio::task::JoinSet;

use self::judge::{Decider, Live, Offline, PathChoice, Query, Verdict};
use self::read::{Reader, Record, Source, Window};
use self::tally::{Histogram, Samples, Split, Tally};
use self::watch::{Screen, Signals};
use crate::forwarding::ForwardingArgs;
use crate::report::Report;

/// Live decisions asked at once: enough to hide the APIs' latency, few
/// enough not to load a traffic-agent that serves real traffic.
const MAX_IN_FLIGHT: usize = 32;

/// What `tpk preview --help` says after the flags (`tpk`'s command list
/// gives the summary above them).
const AFTER_LONG_HELP: &str = "Offline (the default), the intercept is described by the flags of `telepresence \
     intercept` (or by a mock-server configuration) and decided by the mock server's own code. \
     Live (--cluster-api, --workstation-api, --intercept-id), both sides' Telepresence APIs are \
     asked, as the SDK asks them. Reads the last --last messages of each partition, joins no \
     consumer group and commits nothing.\n\n\
     Exit status: 0 every message is processed exactly once; 1 some would be processed twice or \
     by nobody; 2 the question could not be answered.";

/// The flags; see [`AFTER_LONG_HELP`].
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = AFTER_LONG_HELP,
    mut_arg("intercept_id", |arg| arg.help(
        "ID of the intercept the flags below describe, and the workstation's: the one its \
         consumer sends. With --config alone, which of the file's intercepts is the \
         workstation's; live, the ID sent to the workstation's API [default: <uuid>:mock, or \
         the only intercept's]"
    )),
)]
struct Flags {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT")]
    brokers: Option<String>,

    /// The topic to read
    #[arg(long, env = "KAFKA_TOPIC", value_name = "TOPIC")]
    topic: Option<String>,

    /// How many messages to read from the end of each partition
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    last: u64,

    /// Also count the values of this header (repeatable); offline, the
    /// headers the intercepts filter on are counted anyway
    #[arg(long, value_name = "HEADER", value_parser = parse_header_name)]
    by: Vec<HeaderName>,

    /// How many sample messages to show per side
    #[arg(long, value_name = "N", default_value_t = 3)]
    samples: usize,

    /// The containerPort the consumers send with each query, in place of
    /// TELEPRESENCE_KAFKA_CONTAINER_PORT [default: none sent]
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Option<u16>,

    /// The path the consumers send with each query (the SDK's fixed_path)
    #[arg(long, value_name = "P", group = "path_source")]
    path: Option<String>,

    /// The consumers send the topic as the path (the SDK's path_from_topic)
    #[arg(long, group = "path_source")]
    path_from_topic: bool,

    /// The consumers send this header's first value as the path (the SDK's
    /// path_from_header)
    #[arg(long, value_name = "HEADER", group = "path_source")]
    path_from_header: Option<String>,

    /// Live: the cluster's (traffic-agent's) Telepresence API, e.g. through
    /// `kubectl port-forward`
    #[arg(long, value_name = "URL", requires = "workstation_api")]
    cluster_api: Option<String>,

    /// Live: the workstation's Telepresence API (the user daemon's)
    #[arg(long, value_name = "URL", requires = "cluster_api")]
    workstation_api: Option<String>,

    /// Keep reading new messages and update the output until Ctrl-C or SIGTERM
    #[arg(long)]
    watch: bool,

    /// Bound on each Kafka metadata and offset request, and on a silence of
    /// the brokers while reading the end of the topic, e.g. 10s or 500ms
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::kafka::parse_duration)]
    timeout: Duration,

    /// A librdkafka setting, KEY=VALUE, for the brokers' security settings
    /// and the like (repeatable; applied after KAFKA_OPTIONS, `k=v,k=v`)
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE", value_parser = crate::kafka::parse_option)]
    kafka_options: Vec<(String, String)>,

    #[command(flatten)]
    forwarding: ForwardingArgs,

    #[command(flatten)]
    workload: WorkloadArgs,
}

/// The flags of `tpk preview`, boxed: they are many, and `tpk`'s command
/// enum holds one command's flags inline.
#[derive(Debug)]
pub(crate) struct Args(Box<Flags>);

impl clap::FromArgMatches for Args {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Flags::from_arg_matches(matches).map(|flags| Self(Box::new(flags)))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl clap::Args for Args {
    fn augment_args(command: clap::Command) -> clap::Command {
        Flags::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Flags::augment_args_for_update(command)
    }
}

/// `--by`: HTTP header names, as the APIs compare them (lower case).
fn parse_header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("`{text}` is not an HTTP header name"))
}

/// What `tpk preview` found.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    /// The topic.
    topic: String,
    /// The bootstrap servers.
    brokers: String,
    /// `--last`.
    last: u64,
    /// What decided.
    decided_by: Decider,
    /// What was read of each partition.
    partitions: Vec<Window>,
    /// Who processes the messages read.
    counts: Split,
    /// Who processes them, per value of each header counted.
    histograms: Vec<Histogram>,
    /// The newest messages of each kind.
    samples: Samples,
    /// With `--watch`: `true` in the updates, `false` in the final report.
    #[serde(skip_serializing_if = "Option::is_none")]
    watching: Option<bool>,
    /// No message processed twice, none lost.
    passed: bool,
}

impl Report for Outcome {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        render::render(self, out)
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

/// Who decides: a judge for each mode.
enum Judge {
    Offline(Box<Offline>),
    Live(Arc<Live>),
}

impl Judge {
    fn decider(&self) -> &Decider {
        match self {
            Self::Offline(offline) => offline.decider(),
            Self::Live(live) => live.decider(),
        }
    }
}

/// Runs the preview; the report is the last state, after Ctrl-C or SIGTERM
/// with `--watch`.
pub(crate) async fn run(args: Args, json: bool) -> anyhow::Result<Outcome> {
    let args = *args.0;
    let brokers = args
        .brokers
        .clone()
        .filter(|b| !b.trim().is_empty())
        .context("no brokers: give --brokers HOST:PORT or set KAFKA_BROKERS")?;
    let topic = args
        .topic
        .clone()
        .filter(|t| !t.trim().is_empty())
        .context("no topic: give --topic TOPIC or set KAFKA_TOPIC")?;
    // The flags are checked before anything is asked of the APIs or Kafka,
    // so that a typo is said as such rather than as a network error.
    let forwarding = args.forwarding.rules()?;
    let judge = judge(&args, &topic, forwarding.clone()).await?;
    let mut headers: Vec<HeaderName> = match &judge {
        Judge::Offline(offline) => offline
            .filtered_headers()
            .iter()
            .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .collect(),
        Judge::Live(_) => Vec::new(),
    };
    for name in &args.by {
        if !headers.contains(name) {
            headers.push(name.clone());
        }
    }
    // Installed before reading, so that a signal during the first read ends
    // the watch with what was read rather than killing the process.
    let signals = if args.watch {
        Some(Signals::install().context("listening for Ctrl-C and SIGTERM")?)
    } else {
        None
    };
    let options = crate::kafka::options(&args.kafka_options, &|name| std::env::var_os(name))?;
    let reader = Reader::open(&Source {
        brokers: &brokers,
        topic: &topic,
        last: args.last,
        options: &options,
        timeout: args.timeout,
        watch: args.watch,
        forwarding,
    })
    .await?;
    let tally = Tally::new(headers, args.samples, judge.decider().has_others());
    let mut preview = Preview {
        reader,
        judge,
        tally,
        in_flight: JoinSet::new(),
        topic,
        brokers,
        last: args.last,
        timeout: args.timeout,
    };
    match signals {
        None => {
            preview.catch_up(json, None).await?;
            Ok(preview.outcome(None))
        }
        Some(signals) => preview.watch(json, signals).await,
    }
}

/// The judge the flags ask for: offline, or live once both APIs have
/// answered; flags that belong to the other mode are refused.
async fn judge(args: &Flags, topic: &str, forwarding: HeaderForwarding) -> anyhow::Result<Judge> {
    let query = Query {
        container_port: args.port,
        forwarding,
        path: match (&args.path, args.path_from_topic, &args.path_from_header) {
            (Some(path), _, _) => PathChoice::Fixed(path.clone()),
            (_, true, _) => PathChoice::Topic,
            (_, _, Some(name)) => PathChoice::Header(name.clone()),
            _ => PathChoice::None,
        },
    };
    let (Some(cluster_api), Some(workstation_api)) = (&args.cluster_api, &args.workstation_api)
    else {
        return Ok(Judge::Offline(Box::new(Offline::new(
            &args.workload,
            topic,
            query,
        )?)));
    };
    crate::intercepts::refuse_offline_flags(&args.workload)?;
    let intercept = &args.workload.intercept;
    let Some(intercept_id) = intercept
        .intercept_id
        .as_deref()
        .filter(|id| !id.is_empty())
    else {
        bail!(
            "live mode needs the workstation's intercept ID, which its consumer sends: give \
             --intercept-id ID (`telepresence list` shows it; TELEPRESENCE_INTERCEPT_ID in the \
             intercept's environment)"
        );
    };
    let live = Live::connect(cluster_api, workstation_api, intercept_id, topic, query).await?;
    Ok(Judge::Live(Arc::new(live)))
}

/// The state of one preview.
struct Preview {
    reader: Reader,
    judge: Judge,
    tally: Tally,
    /// Live decisions being asked.
    in_flight: JoinSet<anyhow::Result<(Record, Verdict)>>,
    topic: String,
    brokers: String,
    last: u64,
    /// `--timeout`.
    timeout: Duration,
}

/// What one step of reading did.
enum Step {
    /// A message was counted, or handed over to be judged.
    Progress,
    /// Nothing to count: the end of a partition, a message past the window.
    Nothing,
}

impl Preview {
    /// The report of what has been counted so far.
    fn outcome(&self, watching: Option<bool>) -> Outcome {
        let counts = self.tally.split();
        Outcome {
            topic: self.topic.clone(),
            brokers: self.brokers.clone(),
            last: self.last,
            decided_by: self.judge.decider().clone(),
            partitions: self.reader.windows().to_vec(),
            counts,
            histograms: self.tally.histograms(),
            samples: self.tally.samples(),
            watching,
            passed: counts.overlap == 0 && counts.missing == 0,
        }
    }

    /// Reads every window to its end, with a progress bar. With `signals`,
    /// a signal stops it early, which it says by returning `false`.
    async fn catch_up(
        &mut self,
        json: bool,
        mut signals: Option<&mut Signals>,
    ) -> anyhow::Result<bool> {
        let bar = progress_bar(self.reader.span(), json);
        // Live decisions can take the APIs' own timeout on top of Kafka's.
        let silence = match self.judge {
            Judge::Offline(_) => self.timeout,
            Judge::Live(_) => self.timeout + Duration::from_secs(10),
        };
        let deadline = tokio::time::sleep(silence);
        tokio::pin!(deadline);
        let finished = loop {
            let reading = !self.reader.caught_up();
            if !reading && self.in_flight.is_empty() {
                break true;
            }
            let stop = async {
                match signals.as_mut() {
                    Some(signals) => signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop => break false,
                () = &mut deadline => {
                    bar.finish_and_clear();
                    bail!("{} for {silence:?} (--timeout)", self.reader.stalled());
                }
                step = self.step(reading) => {
                    if let Step::Progress = step? {
                        deadline.as_mut().reset(tokio::time::Instant::now() + silence);
                    }
                    bar.set_position(self.reader.progress());
                }
            }
        };
        bar.finish_and_clear();
        Ok(finished)
    }

    /// After catching up, counts new messages and prints an update on each
    /// change until a signal comes; the report is the final state.
    async fn watch(mut self, json: bool, mut signals: Signals) -> anyhow::Result<Outcome> {
        if !self.catch_up(json, Some(&mut signals)).await? {
            return Ok(self.outcome(Some(false)));
        }
        let mut screen = Screen::new(json);
        screen.show(&self.outcome(Some(true)))?;
        let every = screen.min_interval();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changed = false;
        loop {
            tokio::select! {
                () = signals.recv() => break,
                step = self.step(true) => {
                    if let Step::Progress = step? {
                        changed = true;
                    }
                }
                _ = ticks.tick(), if changed => {
                    // Messages still being judged would be missing from
                    // the counts; the next tick shows them.
                    if self.in_flight.is_empty() {
                        screen.show(&self.outcome(Some(true)))?;
                        changed = false;
                    }
                }
            }
        }
        while let Some(joined) = self.in_flight.join_next().await {
            count(&mut self.tally, joined)?;
        }
        // The caller prints the final report, in place of the last update
        // on a terminal.
        screen.clear();
        Ok(self.outcome(Some(false)))
    }

    /// Reads one event and counts its message or hands it over to be
    /// judged (`read`), or counts a message judged meanwhile. Cancel-safe:
    /// it only awaits Kafka's and the judges' cancel-safe receptions.
    async fn step(&mut self, read: bool) -> anyhow::Result<Step> {
        let Self {
            reader,
            judge,
            tally,
            in_flight,
            ..
        } = self;
        // Back-pressure: a slow API must not let reading run ahead.
        let joined = if !read || in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.join_next().await
        } else {
            tokio::select! {
                received = reader.next() => {
                    let Some(record) = received? else {
                        return Ok(Step::Nothing);
                    };
                    match judge {
                        Judge::Offline(offline) => tally.add(&record, offline.judge(&record)),
                        Judge::Live(live) => {
                            in_flight.spawn(Arc::clone(live).judge(record));
                        }
                    }
                    return Ok(Step::Progress);
                }
                Some(joined) = in_flight.join_next() => Some(joined),
            }
        };
        match joined {
            Some(joined) => {
                count(tally, joined)?;
                Ok(Step::Progress)
            }
            None => Ok(Step::Nothing),
        }
    }
}

/// Counts a message judged live; its failure ends the preview.
fn count(
    tally: &mut Tally,
    joined: Result<anyhow::Result<(Record, Verdict)>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    let (record, verdict) = joined.context("a live decision")??;
    tally.add(&record, verdict);
    Ok(())
}

/// A bar on stderr while the windows are read, unless stderr is not a
/// terminal or the output is JSON (a program reads it, nobody watches).
fn progress_bar(length: u64, json: bool) -> ProgressBar {
    if json || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("reading [{bar:40}] {pos}/{len} offsets {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
