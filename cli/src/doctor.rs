//! `tpk doctor`: checks, where the consumer runs, what it depends on.
//!
//! One line per check: `✓` passed, `✗` failed (with the fix on the next
//! line), `·` information. The checks, in order:
//!
//! - `environment`: Telepresence's variables, read as the SDK reads them;
//! - `side`: which side they make this process (workstation, cluster, or
//!   not under Telepresence);
//! - `api`: `/healthz`; `api-side`: whether `/intercept-info` comes from the
//!   side this process is on; `intercept`: whether the intercept takes the
//!   sample message (`-H`, `--path`);
//! - with `--brokers`: `broker`, `topic`, then `group` (see
//!   [`group`] for the classic mistake), `members` and `lag` of
//!   the group this side reads in. Nothing joins the group or commits.

mod brokers;
mod group;
mod telepresence;

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::BaseConsumer;
use serde::Serialize;

use crate::forwarding::ForwardingArgs;
use crate::kafka;
use crate::message::MessageArgs;
use crate::report::Report;

/// The checks' names, as printed and in the JSON document.
mod name {
    pub(super) const ENVIRONMENT: &str = "environment";
    pub(super) const SIDE: &str = "side";
    pub(super) const API: &str = "api";
    pub(super) const API_SIDE: &str = "api-side";
    pub(super) const INTERCEPT: &str = "intercept";
    pub(super) const KAFKA: &str = "kafka";
    pub(super) const BROKER: &str = "broker";
    pub(super) const TOPIC: &str = "topic";
    pub(super) const GROUP: &str = "group";
    pub(super) const MEMBERS: &str = "members";
    pub(super) const LAG: &str = "lag";
}

#[derive(Debug, clap::Args)]
#[command(
    // Here no intercept flag takes the name, as in explain and preview.
    mut_arg("port", |arg| arg.visible_alias("container-port")),
    after_help = "Checks: environment, side, api, api-side, intercept (Telepresence); \
broker, topic, group, members, lag (Kafka, with --brokers). \
Exit code 0 when none fails, 1 when one does, 2 on bad usage."
)]
pub(crate) struct Args {
    /// The sample message the API is asked about: does the intercept take it?
    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    forwarding: ForwardingArgs,

    /// Kafka's bootstrap servers; without them Kafka is not checked
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    brokers: Option<String>,

    /// The topic the consumer reads
    #[arg(long, env = "KAFKA_TOPIC")]
    topic: Option<String>,

    /// The pod's consumer group, the base the SDK's group_id(..) is given (a
    /// workstation reads in GROUP, a dash and its intercept ID)
    #[arg(long, env = "KAFKA_GROUP", value_name = "GROUP")]
    group: Option<String>,

    /// The group.id the consumer here really sets, when it does not come from
    /// group_id(..): on a workstation it must be the workstation's own
    #[arg(long, value_name = "GROUP")]
    group_id: Option<String>,

    /// A librdkafka setting for the Kafka checks (repeatable; applied after
    /// KAFKA_OPTIONS, key=value,key=value)
    #[arg(short = 'X', long = "kafka-option", value_name = "KEY=VALUE", value_parser = kafka::parse_option)]
    kafka_options: Vec<(String, String)>,

    /// Bound on each question to the API and to Kafka: 5s, 500ms, 1m
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::kafka::parse_duration)]
    timeout: Duration,
}

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Fail,
    Info,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    /// What was seen.
    seen: String,
    /// For a failure: what to do, in one line.
    fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, seen: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            seen: seen.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, seen: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            seen: seen.into(),
            fix: Some(fix.into()),
        }
    }

    fn info(name: &'static str, seen: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Info,
            seen: seen.into(),
            fix: None,
        }
    }
}

/// The checks, in order.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    /// Whether no check failed.
    passed: bool,
    checks: Vec<Check>,
}

impl Outcome {
    fn new(checks: Vec<Check>) -> Self {
        Self {
            passed: checks.iter().all(|c| c.status != Status::Fail),
            checks,
        }
    }
}

impl Report for Outcome {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            let mark = match check.status {
                Status::Pass => '✓',
                Status::Fail => '✗',
                Status::Info => '·',
            };
            writeln!(out, "{mark} {:width$}  {}", check.name, check.seen)?;
            if let Some(fix) = &check.fix {
                writeln!(out, "  {:width$}  fix: {fix}", "")?;
            }
        }
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        writeln!(
            out,
            "\n{} passed, {} failed, {} for information",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Info)
        )
    }

    fn passed(&self) -> bool {
        self.passed
    }
}

pub(crate) async fn run(args: Args, _json: bool) -> anyhow::Result<Outcome> {
    let lookup = |name: &str| std::env::var_os(name);
    Ok(Outcome::new(checks(args, &lookup).await?))
}

/// Every check, with the environment read through `lookup`; an error only
/// for settings that leave nothing to check (bad Kafka settings).
async fn checks(
    mut args: Args,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Vec<Check>> {
    // Empty is unset, as for Telepresence's variables: `--brokers=` or an
    // exported but empty KAFKA_BROKERS asks for no Kafka checks.
    for value in [
        &mut args.brokers,
        &mut args.topic,
        &mut args.group,
        &mut args.group_id,
    ] {
        *value = value.take().filter(|v| !v.trim().is_empty());
    }
    let options = kafka::options(&args.kafka_options, lookup)?;
    if let Some(brokers) = &args.brokers {
        // A setting librdkafka refuses is bad input, not a finding: say so
        // before asking anything.
        kafka::client_config(brokers, &options)
            .create::<BaseConsumer>()
            .context("the Kafka settings (-X, KAFKA_OPTIONS)")?;
    }
    let mut checks = Vec::new();
    let forwarding = args.forwarding.rules()?;
    let settings = telepresence::Settings {
        timeout: args.timeout,
        forwarding: &forwarding,
        sample: &args.message,
        headers_given: !args.message.headers.is_empty(),
    };
    let tp = telepresence::check(lookup, settings, &mut checks).await;
    let group = group::check(tp.as_ref(), args.group.as_deref(), args.group_id.as_deref());
    let Some(brokers) = args.brokers else {
        checks.extend(group.map(|g| g.check));
        checks.push(Check::info(
            name::KAFKA,
            "not checked: give --brokers (or KAFKA_BROKERS), with --topic and --group",
        ));
        return Ok(checks);
    };
    let (group_check, group) = match group {
        Some(g) => (Some(g.check), Some(g.group)),
        None => (None, None),
    };
    let settings = brokers::Settings {
        brokers,
        options,
        topic: args.topic,
        group,
        timeout: args.timeout,
        group_check,
    };
    let kafka = tokio::task::spawn_blocking(move || brokers::check(settings))
        .await
        .context("the Kafka checks stopped")?;
    checks.extend(kafka);
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_puts_each_fix_under_its_failure() {
        let outcome = Outcome::new(vec![
            Check::pass(name::API, "up"),
            Check::fail(name::GROUP, "orders: shared", "use orders-abc"),
            Check::info(name::MEMBERS, "none"),
        ]);
        assert!(!outcome.passed());
        let mut text = Vec::new();
        outcome.render(&mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "✓ api      up\n\
             ✗ group    orders: shared\n\
             \x20          fix: use orders-abc\n\
             · members  none\n\
             \n\
             1 passed, 1 failed, 1 for information\n"
        );
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({
                "passed": false,
                "checks": [
                    {"name": "api", "status": "pass", "seen": "up", "fix": null},
                    {"name": "group", "status": "fail", "seen": "orders: shared", "fix": "use orders-abc"},
                    {"name": "members", "status": "info", "seen": "none", "fix": null},
                ]
            })
        );
        assert!(Outcome::new(vec![Check::info(name::SIDE, "x")]).passed());
    }
}
