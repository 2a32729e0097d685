//! Telepresence's side of the checks: the environment, as the SDK reads it,
//! and the API beside this process.

use std::ffi::OsString;
use std::time::Duration;

use telepresence_kafka::{
    API_HOST_ENV, API_PORT_ENV, CONTAINER_PORT_ENV, Client, ClientBuilder, HeaderForwarding,
    INTERCEPT_ID_ENV, InterceptInfo,
};

use super::{Check, name};
use crate::message::MessageArgs;

/// What the API checks need besides the environment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings<'a> {
    /// Bound on each call to the API.
    pub(super) timeout: Duration,
    /// How the consumer maps a message's headers (and key) to the query's.
    pub(super) forwarding: &'a HeaderForwarding,
    /// The message `/intercept-info` is asked about.
    pub(super) sample: &'a MessageArgs,
    /// Whether `-H` gave headers: only then is a sample the intercept does
    /// not take a finding rather than a shrug.
    pub(super) headers_given: bool,
}

/// Checks the environment and the API; the client, when the environment
/// could be read (the group checks need its side).
pub(super) async fn check(
    lookup: &dyn Fn(&str) -> Option<OsString>,
    settings: Settings<'_>,
    checks: &mut Vec<Check>,
) -> Option<Client> {
    let tp = match client(lookup, settings) {
        Ok(tp) => tp,
        Err((seen, fix)) => {
            checks.push(Check::fail(name::ENVIRONMENT, seen, fix));
            return None;
        }
    };
    let api = match tp.api_url() {
        Some(url) => format!(": the API is at {url}"),
        None => String::new(),
    };
    checks.push(Check::pass(
        name::ENVIRONMENT,
        format!("{}{api}", shown(lookup)),
    ));
    checks.push(side(&tp));
    if tp.is_enabled() {
        api_checks(&tp, settings, checks).await;
    }
    Some(tp)
}

/// The client the consumer here would build, with doctor's bounds; or the
/// line saying why it cannot be built.
fn client(
    lookup: &dyn Fn(&str) -> Option<OsString>,
    settings: Settings<'_>,
) -> Result<Client, (String, String)> {
    let refused = |error: telepresence_kafka::Error| {
        let seen = error.to_string();
        let fix = env_fix(&seen);
        (seen, fix)
    };
    let mut builder = ClientBuilder::from_env_vars(lookup)
        .map_err(refused)?
        .timeout(settings.timeout)
        .header_forwarding(settings.forwarding.clone());
    if let Some(port) = settings.sample.port {
        builder = builder.container_port(port);
    }
    builder.build().map_err(refused)
}

/// The variables, as given: `NAME=value`, or `NAME unset`.
fn shown(lookup: &dyn Fn(&str) -> Option<OsString>) -> String {
    let mut parts = Vec::new();
    for name in [
        API_PORT_ENV,
        API_HOST_ENV,
        INTERCEPT_ID_ENV,
        CONTAINER_PORT_ENV,
    ] {
        match lookup(name) {
            // This crate's own variable is worth a mention only when set.
            None if name == CONTAINER_PORT_ENV => {}
            None => parts.push(format!("{name} unset")),
            Some(value) => match value.to_str() {
                Some(text) if !text.chars().any(char::is_control) && !text.is_empty() => {
                    parts.push(format!("{name}={text}"));
                }
                _ => parts.push(format!("{name}={value:?}")),
            },
        }
    }
    parts.join(", ")
}

/// The fix for a variable the SDK refused; its error starts with `NAME=`.
fn env_fix(error: &str) -> String {
    let names = |name: &str| error.starts_with(&format!("{name}="));
    if names(API_PORT_ENV) {
        format!(
            "set {API_PORT_ENV} to the API's port (1 to 65535), as the intercept's environment \
             gives it (`telepresence intercept ... --env-file FILE`), or unset it outside Telepresence"
        )
    } else if names(API_HOST_ENV) {
        format!(
            "set {API_HOST_ENV} to the API's host name or IP address (unset or empty: localhost), \
             as the intercept's environment gives it"
        )
    } else if names(INTERCEPT_ID_ENV) {
        format!("set {INTERCEPT_ID_ENV} to the intercept's ID, as `telepresence list` shows it")
    } else if names(CONTAINER_PORT_ENV) {
        format!(
            "set {CONTAINER_PORT_ENV} to the intercepted container port (`telepresence list` \
             names it), or unset it"
        )
    } else {
        "fix the value the message names".to_owned()
    }
}

/// Which side the variables make this process.
fn side(tp: &Client) -> Check {
    match (tp.is_enabled(), tp.is_workstation()) {
        (true, true) => Check::info(
            name::SIDE,
            format!(
                "the workstation of intercept {}: it processes the messages the intercept takes",
                tp.intercept_id()
            ),
        ),
        (true, false) => Check::info(
            name::SIDE,
            format!(
                "the cluster ({INTERCEPT_ID_ENV} unset): the pod processes every message no \
                 intercept takes"
            ),
        ),
        (false, false) => Check::info(
            name::SIDE,
            format!(
                "not under Telepresence ({API_PORT_ENV} unset, empty or 0): every message is \
                 processed here, as without Telepresence"
            ),
        ),
        (false, true) => Check::fail(
            name::SIDE,
            format!(
                "{INTERCEPT_ID_ENV} is set but {API_PORT_ENV} is not: this process asks no API \
                 and processes every message, as the pod does, so the intercepted ones are \
                 processed twice"
            ),
            "enable Telepresence's API (telepresenceAPI.port in Telepresence's config.yml), \
             then restart the intercept",
        ),
    }
}

/// `/healthz`, then `/intercept-info` about the sample.
async fn api_checks(tp: &Client, settings: Settings<'_>, checks: &mut Vec<Check>) {
    let base = tp.api_url().expect("an enabled client has an API");
    let healthz = base
        .join("healthz")
        .expect("a relative path joins any base URL");
    if let Err(error) = tp.healthz().await {
        // The SDK's message names the URL when the connection failed; a
        // status it got does not.
        let error = error.to_string();
        let seen = if error.contains(healthz.as_str()) {
            error
        } else {
            format!("GET {healthz}: {error}")
        };
        checks.push(Check::fail(name::API, seen, api_fix(tp)));
        return;
    }
    checks.push(Check::pass(name::API, format!("GET {healthz}: up")));

    let pairs = settings.sample.kafka_headers();
    let mut message = settings.sample.message(&pairs);
    if let Some(path) = settings.sample.path.as_deref() {
        message = message.path(path);
    }
    let info = match tp.intercept_info(&message).await {
        Ok(info) => info,
        Err(error) if error.status() == Some(404) => {
            checks.push(Check::info(
                name::API_SIDE,
                format!(
                    "{base} has no /intercept-info (Telepresence 2.4): its side and the \
                     intercept cannot be checked"
                ),
            ));
            return;
        }
        Err(error) => {
            checks.push(Check::fail(
                name::API_SIDE,
                format!("GET /intercept-info: {error}"),
                "the API is up but cannot answer: see Telepresence's logs \
                 (`telepresence gather-logs`)",
            ));
            return;
        }
    };
    let side = side_check(tp, &info);
    let agrees = side.status != super::Status::Fail;
    checks.push(side);
    if agrees {
        let dropped = tp.stats().dropped_headers;
        checks.push(intercept_check(tp, &info, settings, dropped));
    }
}

fn api_fix(tp: &Client) -> String {
    if tp.is_workstation() {
        format!(
            "check that the intercept runs (`telepresence status`, `telepresence list`) and that \
             {API_PORT_ENV} and {API_HOST_ENV} are its environment's \
             (`telepresence intercept ... --env-file FILE`)"
        )
    } else {
        format!(
            "check that the pod's traffic-agent serves the API (`telepresence list`; \
             telepresenceAPI.port in Telepresence's config.yml) and that {API_PORT_ENV} and \
             {API_HOST_ENV} are the ones it sets"
        )
    }
}

/// Whether the API serves this side: the workstation's user daemon answers
/// `clientSide: true`, the pod's traffic-agent `false`.
fn side_check(tp: &Client, info: &InterceptInfo) -> Check {
    let base = tp.api_url().expect("an enabled client has an API");
    match (tp.is_workstation(), info.client_side) {
        (true, true) => Check::pass(
            name::API_SIDE,
            "the workstation's API (clientSide: true), as a workstation needs",
        ),
        (false, false) => Check::pass(
            name::API_SIDE,
            "the pod's traffic-agent (clientSide: false), as the pod needs",
        ),
        (true, false) => Check::fail(
            name::API_SIDE,
            format!(
                "{base} is the pod's traffic-agent (clientSide: false), but this process has \
                 the intercept ID {}: it would process the pod's share too, and skip the \
                 intercepted messages",
                tp.intercept_id()
            ),
            format!(
                "point {API_PORT_ENV} and {API_HOST_ENV} at the workstation's API, from the \
                 intercept's environment (`telepresence intercept ... --env-file FILE`); in the \
                 pod, unset {INTERCEPT_ID_ENV}"
            ),
        ),
        (false, true) => Check::fail(
            name::API_SIDE,
            format!(
                "{base} is a workstation's API (clientSide: true), but {INTERCEPT_ID_ENV} is \
                 unset: this process would skip every message, the intercepted ones included"
            ),
            format!(
                "set {INTERCEPT_ID_ENV} to the intercept's ID (`telepresence list` shows it), \
                 or start the consumer with `telepresence intercept ... -- COMMAND`"
            ),
        ),
    }
}

/// Whether an intercept takes the sample, on the side the API serves.
fn intercept_check(
    tp: &Client,
    info: &InterceptInfo,
    settings: Settings<'_>,
    dropped: u64,
) -> Check {
    let sample = settings.sample;
    let metadata = if info.metadata.is_empty() {
        "no metadata".to_owned()
    } else {
        let pairs: Vec<String> = info
            .metadata
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!("metadata {}", pairs.join(", "))
    };
    let dropped = match dropped {
        0 => String::new(),
        n => format!(" ({n} header(s) left out, as the consumer would: HTTP cannot carry them)"),
    };
    let id = tp.intercept_id();
    match (tp.is_workstation(), info.intercepted) {
        (true, true) => Check::pass(
            name::INTERCEPT,
            format!("{sample}{dropped}: intercepted by {id}, {metadata}: processed here"),
        ),
        (true, false) if settings.headers_given => Check::fail(
            name::INTERCEPT,
            format!(
                "{sample}{dropped}: not intercepted by {id}: the workstation skips it, the pod \
                 processes it"
            ),
            "the intercept's filters do not match these headers; compare with `tpk explain`",
        ),
        (true, false) => Check::info(
            name::INTERCEPT,
            format!(
                "{sample}{dropped}: not intercepted by {id}; give -H NAME=VALUE of a message \
                 you expect here to check the intercept's filters (or the intercept ID is not \
                 one the API knows: `telepresence list`)"
            ),
        ),
        (false, true) => Check::info(
            name::INTERCEPT,
            format!(
                "{sample}{dropped}: intercepted, {metadata}: the pod leaves it to the workstation"
            ),
        ),
        (false, false) => Check::info(
            name::INTERCEPT,
            format!("{sample}{dropped}: not intercepted: the pod processes it"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refused_variable_gets_its_own_fix() {
        for (vars, fix) in [
            (
                &[(API_PORT_ENV, "abc")][..],
                "set TELEPRESENCE_API_PORT to the API's port",
            ),
            (
                &[(API_PORT_ENV, "1"), (API_HOST_ENV, "a b")][..],
                "set TELEPRESENCE_API_HOST to the API's host",
            ),
            (
                &[(INTERCEPT_ID_ENV, "a\nb")][..],
                "set TELEPRESENCE_INTERCEPT_ID to",
            ),
            (
                &[(CONTAINER_PORT_ENV, "http")][..],
                "set TELEPRESENCE_KAFKA_CONTAINER_PORT to",
            ),
        ] {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| OsString::from(v))
            };
            let settings = Settings {
                timeout: Duration::from_secs(1),
                forwarding: &HeaderForwarding::default(),
                sample: &MessageArgs::default(),
                headers_given: false,
            };
            let (seen, got) = client(&lookup, settings).unwrap_err();
            assert!(seen.starts_with(vars.last().unwrap().0), "{seen}");
            assert!(got.starts_with(fix), "{vars:?}: {got}");
        }
    }

    #[test]
    fn variables_are_shown_as_given() {
        let vars = [
            (API_PORT_ENV, "9980"),
            (INTERCEPT_ID_ENV, "a\nb"),
            (API_HOST_ENV, ""),
        ];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        };
        assert_eq!(
            shown(&lookup),
            "TELEPRESENCE_API_PORT=9980, TELEPRESENCE_API_HOST=\"\", \
             TELEPRESENCE_INTERCEPT_ID=\"a\\nb\""
        );
        assert_eq!(
            shown(&|_| None),
            "TELEPRESENCE_API_PORT unset, TELEPRESENCE_API_HOST unset, \
             TELEPRESENCE_INTERCEPT_ID unset"
        );
    }
}
