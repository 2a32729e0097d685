//! `tpk explain`: what each side decides for one message, and why.
//!
//! Offline (the default), the intercepts come from `telepresence
//! intercept`-style flags or a mock configuration and are evaluated
//! in-process by the mock server's own decision code, under the rules of the
//! release given with `--telepresence-version`. Live (`--cluster-api`,
//! `--workstation-api`), the answers come from the running APIs, asked as the
//! SDK asks them; when an API is a telepresence-kafka mock server, the reason
//! is read from its journal.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http::{HeaderMap, HeaderValue};
use serde::Serialize;
use telepresence_api::{CALLER_INTERCEPT_ID_HEADER, Explanation, Reason, Side, endpoint};
use telepresence_kafka::{Client, FailurePolicy, HeaderForwarding};
use telepresence_mock_server::Admin;
use telepresence_mock_server::cli::WorkloadArgs;

use crate::forwarding::ForwardingArgs;
use crate::intercepts::{self, Chosen, Mine};
use crate::message::MessageArgs;
use crate::report::Report;

/// Say what each side decides for one message, and why.
///
/// Offline (the default), the intercept is described with the flags of
/// `telepresence intercept` (or a mock configuration file) and evaluated
/// with the mock server's rules for the chosen release. Live, the running
/// APIs answer; a telepresence-kafka mock server also says why.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("intercept_id", |arg| arg.help(
        "ID of the intercept the flags below describe, and the workstation's: the caller ID its \
         consumer sends. With --config alone, which of the file's intercepts is the \
         workstation's (any ID: an unknown one shows what a stale ID costs); live, the ID sent \
         to the workstation's API [default: <uuid>:mock, or the only intercept's]"
    )),
    after_help = "Examples:
  tpk explain -H x-dev=bob --http-header x-dev=alice
  tpk explain -H x-dev=alice --config mock.yaml --intercept-id abc:orders
  tpk explain -H x-dev=alice --cluster-api http://localhost:9981 \\
              --workstation-api http://localhost:9980 --intercept-id abc:orders

Exit codes: 0 the message is processed exactly once; 1 it would be processed
twice or by no side; 2 the question could not be answered."
)]
pub(crate) struct Args {
    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    forwarding: ForwardingArgs,

    /// Ask the cluster side's API at URL (the traffic-agent's, or a mock's)
    #[arg(long, value_name = "URL", help_heading = "Live")]
    cluster_api: Option<String>,

    /// Ask the workstation side's API at URL (the user daemon's, or a mock's)
    #[arg(long, value_name = "URL", help_heading = "Live")]
    workstation_api: Option<String>,

    /// Token of the mock servers' admin API, to read their journals
    #[arg(
        long,
        value_name = "TOKEN",
        env = telepresence_api::env::MOCK_ADMIN_TOKEN,
        hide_env_values = true,
        help_heading = "Live"
    )]
    admin_token: Option<String>,

    #[command(flatten, next_help_heading = "Offline: the intercepts")]
    workload: WorkloadArgs,
}

/// The answer: the message as sent, each side's decision and the verdict.
#[derive(Debug, Serialize)]
pub(crate) struct Explained {
    /// `offline` or `live`.
    mode: &'static str,
    /// The release whose rules decided, offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    telepresence_version: Option<String>,
    /// The intercepts evaluated, offline, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    intercepts: Vec<String>,
    message: MessageArgs,
    /// The Kafka headers the SDK leaves out of the request (not valid in
    /// HTTP, or reserved).
    #[serde(skip_serializing_if = "is_zero")]
    headers_not_forwarded: usize,
    sides: Vec<SideAnswer>,
    verdict: Verdict,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One side's answer.
#[derive(Debug, Serialize)]
struct SideAnswer {
    side: Side,
    /// The API asked, live.
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<String>,
    /// The caller ID sent: the workstation's intercept.
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    /// Whether this side processes the message; `None` when it could not be asked.
    consume_here: Option<bool>,
    /// The intercept the message belongs to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    intercept: Option<String>,
    /// Why, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Reason>,
    /// Why there is no reason, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// What happens to the message, both sides taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    /// Exactly one side processes it.
    Once,
    /// Both sides process it: it would be done twice.
    Twice,
    /// No side processes it: it would be lost.
    Lost,
    /// One side's answer is missing.
    Unknown,
}

impl Explained {
    fn reason(&self, side: Side) -> Option<&Reason> {
        self.sides
            .iter()
            .find(|s| s.side == side)
            .and_then(|s| s.reason.as_ref())
    }

    /// The likely cause of a split that is not exact, from the reasons.
    fn hint(&self) -> &'static str {
        match (self.reason(Side::Agent), self.reason(Side::Client)) {
            (_, Some(Reason::UnknownCaller { .. } | Reason::NoCallerId)) => {
                "the workstation's API does not know its intercept ID: check \
                 TELEPRESENCE_INTERCEPT_ID against `telepresence list`"
            }
            (
                Some(
                    Reason::NoTarget { .. }
                    | Reason::NoPortGiven { .. }
                    | Reason::CallerOnOtherPort { .. },
                ),
                _,
            ) => {
                "the cluster's agent routes by container port and this one has no intercept: \
                 give the consumer its port (TELEPRESENCE_KAFKA_CONTAINER_PORT)"
            }
            (
                Some(Reason::NoMatch {
                    candidates,
                    unlisted: 0,
                    ..
                }),
                _,
            ) if candidates.is_empty() => {
                "the cluster's agent routes by container port and this one has no intercept: \
                 give the consumer its port (TELEPRESENCE_KAFKA_CONTAINER_PORT)"
            }
            _ => "the two sides do not have the same intercepts (a stale or different intercept)",
        }
    }
}

impl Report for Explained {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "message      {}", self.message)?;
        if self.headers_not_forwarded > 0 {
            writeln!(
                out,
                "             ({} header(s) not forwarded: not valid in HTTP, reserved, or left \
                 out by the consumer's header options)",
                self.headers_not_forwarded
            )?;
        }
        match &self.telepresence_version {
            Some(version) => writeln!(
                out,
                "rules        Telepresence {version}, evaluated offline"
            )?,
            None => writeln!(out, "rules        the running APIs'")?,
        }
        for intercept in &self.intercepts {
            writeln!(out, "intercept    {intercept}")?;
        }
        writeln!(out)?;
        for side in &self.sides {
            let who = match (side.side, &side.caller) {
                (Side::Agent, _) => "cluster".to_owned(),
                (Side::Client, Some(id)) => format!("workstation ({id})"),
                (Side::Client, None) => "workstation".to_owned(),
            };
            let does = match side.consume_here {
                Some(true) => "processes it",
                Some(false) => "leaves it",
                None => "no answer",
            };
            writeln!(out, "{who}: {does}")?;
            if let Some(api) = &side.api {
                writeln!(out, "  asked      {api}")?;
            }
            if let Some(reason) = &side.reason {
                writeln!(out, "  because    {reason}")?;
            }
            if let Some(note) = &side.note {
                writeln!(out, "  note       {note}")?;
            }
        }
        writeln!(out)?;
        let processor = self
            .sides
            .iter()
            .find(|s| s.consume_here == Some(true))
            .map(|s| match s.side {
                Side::Agent => "the cluster",
                Side::Client => "the workstation",
            });
        match (self.verdict, processor) {
            (Verdict::Once, Some(by)) => writeln!(out, "✓ processed once, by {by}"),
            (Verdict::Once, None) => writeln!(out, "✓ processed once"),
            (Verdict::Twice, _) => writeln!(
                out,
                "✗ processed twice: both sides consume it; {}",
                self.hint()
            ),
            (Verdict::Lost, _) => {
                writeln!(out, "✗ lost: neither side consumes it; {}", self.hint())
            }
            (Verdict::Unknown, _) => writeln!(out, "? only one side answered"),
        }
    }

    fn passed(&self) -> bool {
        self.verdict == Verdict::Once
    }

    fn answered(&self) -> bool {
        self.verdict != Verdict::Unknown
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<Explained> {
    if args.cluster_api.is_some() || args.workstation_api.is_some() {
        live(args).await
    } else {
        offline(&args)
    }
}

fn offline(args: &Args) -> anyhow::Result<Explained> {
    let Chosen {
        spec,
        workload,
        mine: caller,
    } = intercepts::choose(&args.workload, Mine::Any)?;
    let sample = args.message.clone();
    let (headers, not_forwarded) = forward(&sample, &args.forwarding.rules()?);
    let path = sample.path.as_deref().unwrap_or_default();
    let port = sample.port.unwrap_or(0);
    let pod = workload.explain(Side::Agent, &headers, path, port);
    let mut as_workstation = headers;
    as_workstation.insert(
        CALLER_INTERCEPT_ID_HEADER,
        HeaderValue::from_str(&caller)
            .with_context(|| format!("--intercept-id {caller:?}: not a valid header value"))?,
    );
    let workstation = workload.explain(Side::Client, &as_workstation, path, port);
    let sides = vec![
        offline_answer(pod, None),
        offline_answer(workstation, Some(caller)),
    ];
    Ok(Explained {
        mode: "offline",
        telepresence_version: Some(spec.version.to_string()),
        intercepts: workload.intercepts().map(ToString::to_string).collect(),
        message: sample,
        headers_not_forwarded: not_forwarded,
        verdict: verdict(&sides),
        sides,
    })
}

fn offline_answer(explanation: Explanation, caller: Option<String>) -> SideAnswer {
    SideAnswer {
        side: explanation.side,
        api: None,
        caller,
        consume_here: Some(explanation.consume_here),
        intercept: explanation.intercept,
        reason: Some(explanation.reason),
        note: None,
    }
}

/// The HTTP headers the SDK sends for the message, and how many it leaves out.
fn forward(sample: &MessageArgs, rules: &HeaderForwarding) -> (HeaderMap, usize) {
    let forwarded = rules.forward_message(&sample.message(&sample.kafka_headers()));
    (forwarded.headers, forwarded.dropped)
}

fn verdict(sides: &[SideAnswer]) -> Verdict {
    let answer = |side| {
        sides
            .iter()
            .find(|s| s.side == side)
            .and_then(|s| s.consume_here)
    };
    match (answer(Side::Agent), answer(Side::Client)) {
        (Some(true), Some(true)) => Verdict::Twice,
        (Some(false), Some(false)) => Verdict::Lost,
        (Some(_), Some(_)) => Verdict::Once,
        _ => Verdict::Unknown,
    }
}

/// A header sent with the message in live mode, so that the request can be
/// found in a mock server's journal. No intercept filters on it.
const MARKER_HEADER: &str = "x-tpk-explain";

/// How long one API may take to answer.
const API_TIMEOUT: Duration = Duration::from_secs(5);

async fn live(args: Args) -> anyhow::Result<Explained> {
    intercepts::refuse_offline_flags(&args.workload)?;
    let intercept = &args.workload.intercept;
    let (Some(cluster_api), Some(workstation_api)) = (&args.cluster_api, &args.workstation_api)
    else {
        bail!("live, give both --cluster-api and --workstation-api: the verdict needs both sides");
    };
    let Some(caller) = intercept.intercept_id.clone().filter(|id| !id.is_empty()) else {
        bail!(
            "live, give the workstation's intercept ID with --intercept-id ID (its \
             TELEPRESENCE_INTERCEPT_ID; `telepresence list` shows it): the workstation's API \
             decides only for it"
        );
    };
    let sample = args.message.clone();
    let rules = args.forwarding.rules()?;
    let (_, not_forwarded) = forward(&sample, &rules);
    let marker = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let token = args.admin_token.as_deref();
    let (pod, workstation) = tokio::join!(
        ask(cluster_api, None, &sample, &rules, &marker, token),
        ask(
            workstation_api,
            Some(&caller),
            &sample,
            &rules,
            &marker,
            token
        ),
    );
    let sides = vec![pod, workstation];
    Ok(Explained {
        mode: "live",
        telepresence_version: None,
        intercepts: Vec::new(),
        message: sample,
        headers_not_forwarded: not_forwarded,
        verdict: verdict(&sides),
        sides,
    })
}

/// Asks one side's API as the SDK would, then its journal why.
async fn ask(
    url: &str,
    caller: Option<&str>,
    sample: &MessageArgs,
    rules: &HeaderForwarding,
    marker: &str,
    token: Option<&str>,
) -> SideAnswer {
    let side = if caller.is_some() {
        Side::Client
    } else {
        Side::Agent
    };
    let mut answer = SideAnswer {
        side,
        api: Some(url.to_owned()),
        caller: caller.map(str::to_owned),
        consume_here: None,
        intercept: None,
        reason: None,
        note: None,
    };
    let client = match sdk_client(url, caller, sample, rules) {
        Ok(client) => client,
        Err(error) => {
            answer.note = Some(format!("{error:#}"));
            return answer;
        }
    };
    let mut headers = sample.kafka_headers();
    headers.push((MARKER_HEADER, Some(marker.as_bytes())));
    let message = sample.message(&headers);
    match client.should_consume(&message).await {
        Ok(consume) => answer.consume_here = Some(consume),
        Err(error) => {
            answer.note = Some(format!("cannot ask {url}: {error}"));
            return answer;
        }
    }
    match why(url, marker, token).await {
        Ok(Some((intercept, reason))) => {
            answer.intercept = intercept;
            answer.reason = reason;
        }
        Ok(None) => {
            answer.note = Some("its journal does not have the request".to_owned());
        }
        Err(error) => {
            answer.note = Some(format!(
                "no reason: not a telepresence-kafka mock server, or its admin API refused \
                 ({error})"
            ));
        }
    }
    answer
}

fn sdk_client(
    url: &str,
    caller: Option<&str>,
    sample: &MessageArgs,
    rules: &HeaderForwarding,
) -> anyhow::Result<Client> {
    // The marker must reach the journal whatever the consumer forwards.
    let rules = match rules.allowed() {
        Some(allowed) => rules
            .clone()
            .allow(allowed.iter().map(String::as_str).chain([MARKER_HEADER])),
        None => rules.clone(),
    };
    let mut builder = Client::builder()
        .api_url(url)
        .timeout(API_TIMEOUT)
        .failure_policy(FailurePolicy::Fail)
        .header_forwarding(rules);
    if let Some(id) = caller {
        builder = builder.intercept_id(id);
    }
    if let Some(port) = sample.port {
        builder = builder.container_port(port);
    }
    if let Some(path) = &sample.path {
        builder = builder.fixed_path(path.clone());
    }
    builder
        .build()
        .with_context(|| format!("the SDK refuses {url}"))
}

/// The decision and its reason, from a mock server's journal: the
/// `/consume-here` request that carried `marker`.
async fn why(
    url: &str,
    marker: &str,
    token: Option<&str>,
) -> anyhow::Result<Option<(Option<String>, Option<Reason>)>> {
    let admin = Admin::connect(url, token).await?;
    let journal = admin.journal().await?;
    Ok(journal
        .into_iter()
        .rev()
        .find(|entry| {
            entry.endpoint == endpoint::CONSUME_HERE && entry.header(MARKER_HEADER) == Some(marker)
        })
        .map(|entry| (entry.intercept, entry.reason)))
}
