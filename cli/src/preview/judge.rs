//! Who processes a message: the cluster's consumer, the workstation's, or
//! (offline, when the workload has several intercepts) another workstation's.
//!
//! Offline, the mock server's own decision code answers for both sides, so
//! the two sides cannot disagree unless the intercepts overlap; live, each
//! side's API is asked through the SDK, exactly as the consumers ask it.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use http::HeaderValue;
use serde::Serialize;
use telepresence_api::{CALLER_INTERCEPT_ID_HEADER, Intercept, Side};
use telepresence_kafka::{Client, ClientBuilder, FailurePolicy, HeaderForwarding};
use telepresence_mock_server::Workload;
use telepresence_mock_server::cli::WorkloadArgs;

use super::read::Record;
use crate::intercepts::{self, Chosen, Mine};

/// Where a query's `path` comes from, as the SDK's `PathSource` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum PathChoice {
    /// No path: the APIs see an empty one.
    #[default]
    None,
    /// `--path`.
    Fixed(String),
    /// `--path-from-topic`.
    Topic,
    /// `--path-from-header`.
    Header(String),
}

impl PathChoice {
    /// The path the SDK would send for `record`, as its `PathSource`
    /// resolves it (an empty one is not sent, which is the same).
    fn resolve(&self, topic: &str, record: &Record) -> String {
        match self {
            Self::None => String::new(),
            Self::Fixed(path) => path.clone(),
            Self::Topic => topic.to_owned(),
            Self::Header(name) => record
                .headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| String::from_utf8_lossy(value.as_deref().unwrap_or_default()))
                .unwrap_or_default()
                .into_owned(),
        }
    }

    fn apply(&self, builder: ClientBuilder) -> ClientBuilder {
        match self {
            Self::None => builder,
            Self::Fixed(path) => builder.fixed_path(path),
            Self::Topic => builder.path_from_topic(),
            Self::Header(name) => builder.path_from_header(name),
        }
    }

    /// How the output describes it.
    pub(super) fn describe(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Fixed(path) => Some(format!("{path:?}")),
            Self::Topic => Some("the topic".to_owned()),
            Self::Header(name) => Some(format!("header {name}")),
        }
    }
}

/// What the SDK sends besides the headers.
#[derive(Clone, Debug, Default)]
pub(super) struct Query {
    /// `containerPort`, when sent.
    pub(super) container_port: Option<u16>,
    /// How the consumers map a message's headers (and key) to the query's.
    pub(super) forwarding: HeaderForwarding,
    /// Where `path` comes from.
    pub(super) path: PathChoice,
}

/// Who processes one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// The cluster's consumer (the traffic-agent's `/consume-here`).
    pub(super) cluster: bool,
    /// The workstation's consumer, with its intercept ID.
    pub(super) workstation: bool,
    /// How many other workstations take it (offline, the workload's other
    /// intercepts; live, unknown and 0).
    pub(super) others: u32,
}

impl Verdict {
    /// How many consumers process the message.
    pub(super) fn processors(&self) -> u32 {
        u32::from(self.cluster) + u32::from(self.workstation) + self.others
    }
}

/// What decided, for the report.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(super) enum Decider {
    /// The mock server's decision code, on the intercepts given.
    Offline {
        /// The Telepresence release whose rules apply.
        telepresence_version: String,
        /// Where the intercepts came from.
        intercepts_from: String,
        /// The intercepts.
        intercepts: Vec<Intercept>,
        /// The workstation's intercept ID.
        workstation_intercept: String,
        /// `containerPort`, when sent.
        container_port: Option<u16>,
        /// Where `path` comes from, when sent.
        path: Option<String>,
    },
    /// The two APIs, asked.
    Live {
        /// The cluster's (traffic-agent's) API.
        cluster_api: String,
        /// The workstation's API.
        workstation_api: String,
        /// The workstation's intercept ID.
        workstation_intercept: String,
        /// `containerPort`, when sent.
        container_port: Option<u16>,
        /// Where `path` comes from, when sent.
        path: Option<String>,
    },
}

impl Decider {
    /// Whether the decisions come from the APIs.
    pub(super) fn is_live(&self) -> bool {
        matches!(self, Self::Live { .. })
    }

    /// Whether the workload has intercepts besides the workstation's, whose
    /// workstations are counted apart.
    pub(super) fn has_others(&self) -> bool {
        matches!(self, Self::Offline { intercepts, .. } if intercepts.len() > 1)
    }
}

/// The offline judge: a workload's intercepts under one release's rules.
pub(super) struct Offline {
    workload: Workload,
    topic: String,
    query: Query,
    /// The workstation's intercept ID, as the caller header.
    mine: HeaderValue,
    /// The other intercepts' IDs, as caller headers.
    others: Vec<HeaderValue>,
    decider: Decider,
    /// The header names the intercepts filter on, lower case.
    filtered: Vec<String>,
}

impl Offline {
    /// The workload the flags or the configuration describe, and the
    /// workstation's intercept among its intercepts.
    pub(super) fn new(args: &WorkloadArgs, topic: &str, query: Query) -> anyhow::Result<Self> {
        let Chosen {
            spec,
            workload,
            mine,
        } = intercepts::choose(args, Mine::Known)?;
        let origin = spec.intercepts_origin.to_string();
        let ids: Vec<&str> = spec.intercepts.iter().map(|i| i.id.as_str()).collect();
        let caller = |id: &str| {
            HeaderValue::from_str(id)
                .with_context(|| format!("intercept ID {id:?} cannot be sent as an HTTP header"))
        };
        let others = ids
            .iter()
            .filter(|id| **id != mine)
            .map(|id| caller(id))
            .collect::<anyhow::Result<_>>()?;
        let mut filtered: Vec<String> = Vec::new();
        for intercept in &spec.intercepts {
            for name in intercept.headers.keys() {
                let name = name.to_ascii_lowercase();
                if !filtered.contains(&name) {
                    filtered.push(name);
                }
            }
        }
        let decider = Decider::Offline {
            telepresence_version: spec.version.to_string(),
            intercepts_from: origin,
            intercepts: spec.intercepts.clone(),
            workstation_intercept: mine.clone(),
            container_port: query.container_port,
            path: query.path.describe(),
        };
        Ok(Self {
            workload,
            topic: topic.to_owned(),
            mine: caller(&mine)?,
            others,
            query,
            decider,
            filtered,
        })
    }

    /// The header names the intercepts filter on, lower case, in order.
    pub(super) fn filtered_headers(&self) -> &[String] {
        &self.filtered
    }

    /// What decides.
    pub(super) fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Both sides' decisions, as the mock server would give them to the
    /// SDK's queries for `record`.
    pub(super) fn judge(&self, record: &Record) -> Verdict {
        let path = self.query.path.resolve(&self.topic, record);
        let port = self.query.container_port.unwrap_or(0);
        let mut headers = record.forwarded.clone();
        let mut ask = |side: Side, caller: HeaderValue| {
            // The SDK sends the header in the cluster too, empty.
            headers.insert(CALLER_INTERCEPT_ID_HEADER, caller);
            self.workload
                .explain(side, &headers, &path, port)
                .consume_here
        };
        let cluster = ask(Side::Agent, HeaderValue::from_static(""));
        let workstation = ask(Side::Client, self.mine.clone());
        let others = self
            .others
            .iter()
            .map(|id| u32::from(ask(Side::Client, id.clone())))
            .sum();
        Verdict {
            cluster,
            workstation,
            others,
        }
    }
}

/// The live judge: the two APIs, through SDK clients that return errors
/// rather than fall back, so that a failing API is reported instead of
/// counted as a decision.
pub(super) struct Live {
    cluster: Client,
    workstation: Client,
    topic: String,
    decider: Decider,
}

impl Live {
    /// Clients for both APIs, checked: each answers `/healthz` and serves
    /// the side it is given for.
    pub(super) async fn connect(
        cluster_api: &str,
        workstation_api: &str,
        intercept_id: &str,
        topic: &str,
        query: Query,
    ) -> anyhow::Result<Self> {
        let build = |url: &str, id: &str, flag: &str| {
            let mut builder = Client::builder()
                .api_url(url)
                .intercept_id(id)
                .failure_policy(FailurePolicy::Fail)
                .header_forwarding(query.forwarding.clone());
            if let Some(port) = query.container_port {
                builder = builder.container_port(port);
            }
            query
                .path
                .apply(builder)
                .build()
                .map_err(|e| anyhow!("{flag} {url}: {e}"))
        };
        let cluster = build(cluster_api, "", "--cluster-api")?;
        let workstation = build(workstation_api, intercept_id, "--workstation-api")?;
        for (client, flag, url) in [
            (&cluster, "--cluster-api", cluster_api),
            (&workstation, "--workstation-api", workstation_api),
        ] {
            client
                .healthz()
                .await
                .map_err(|e| anyhow!("{flag} {url}: {e}"))?;
            client
                .check_side()
                .await
                .map_err(|e| anyhow!("{flag} {url}: {e}"))?;
        }
        let decider = Decider::Live {
            cluster_api: cluster_api.to_owned(),
            workstation_api: workstation_api.to_owned(),
            workstation_intercept: intercept_id.to_owned(),
            container_port: query.container_port,
            path: query.path.describe(),
        };
        Ok(Self {
            cluster,
            workstation,
            topic: topic.to_owned(),
            decider,
        })
    }

    /// What decides.
    pub(super) fn decider(&self) -> &Decider {
        &self.decider
    }

    /// Both APIs' answers for `record`, asked at once.
    pub(super) async fn judge(
        self: Arc<Self>,
        record: Record,
    ) -> anyhow::Result<(Record, Verdict)> {
        let verdict = {
            let pairs = record.pairs();
            let message = record.message(&pairs).topic(&self.topic);
            let (cluster, workstation) = tokio::join!(
                self.cluster.should_consume(&message),
                self.workstation.should_consume(&message)
            );
            let at = |flag: &str, client: &Client| {
                let url = client.api_url().map(|u| u.as_str()).unwrap_or_default();
                format!(
                    "{flag} {url} failed on {}/{}@{}",
                    self.topic, record.partition, record.offset
                )
            };
            Verdict {
                cluster: cluster.with_context(|| at("--cluster-api", &self.cluster))?,
                workstation: workstation
                    .with_context(|| at("--workstation-api", &self.workstation))?,
                others: 0,
            }
        };
        Ok((record, verdict))
    }
}
