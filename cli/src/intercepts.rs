//! The intercepts an offline command evaluates, and which one is the
//! workstation's: the same rules for `explain` and `preview`.

use anyhow::bail;
use telepresence_mock_server::cli::{WorkloadArgs, WorkloadSpec};
use telepresence_mock_server::{CONFIG_ENV, Workload};

/// Why there is nothing to decide with. `--intercept-id` and
/// `--container-port` alone do not count: they name an intercept and a port,
/// and say nothing of what the intercept matches.
const NO_INTERCEPT: &str = "no intercept: describe it with the flags you would give \
     `telepresence intercept` (--http-header x-dev=alice, --http-header all for every message, \
     --http-path-prefix /api, ...), or give --config FILE (the mock server's configuration), or \
     ask the live APIs with --cluster-api URL --workstation-api URL --intercept-id ID";

/// The workload the flags or the configuration describe, checked under its
/// release's rules, and the workstation's intercept among its intercepts.
pub(crate) struct Chosen {
    pub(crate) spec: WorkloadSpec,
    pub(crate) workload: Workload,
    /// The workstation's intercept ID: the caller ID its consumer sends.
    pub(crate) mine: String,
}

/// Whether the workstation's intercept ID must be one of the workload's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mine {
    /// Among them: a typo would only make every message "lost".
    Known,
    /// Any: a stale ID is a situation worth explaining.
    Any,
}

/// With intercept flags, `--intercept-id` names the flags' intercept, which
/// is the workstation's. With only a configuration, it picks the
/// workstation's intercept among the file's (required when there are
/// several), and `--container-port` is refused: the file's intercepts have
/// their ports, and what the consumers send is `--port`.
pub(crate) fn choose(args: &WorkloadArgs, mine: Mine) -> anyhow::Result<Chosen> {
    let flags = &args.intercept;
    let described = !flags.http_header.is_empty()
        || !flags.http_path_equal.is_empty()
        || !flags.http_path_prefix.is_empty()
        || !flags.http_path_regex.is_empty()
        || !flags.http_meta.is_empty();
    let configured = args.config.is_some()
        || std::env::var(CONFIG_ENV).is_ok_and(|yaml| !yaml.trim().is_empty());
    if !described && !configured {
        bail!(NO_INTERCEPT);
    }
    let chosen = flags.intercept_id.clone();
    let mut args = args.clone();
    if !described {
        if let Some(port) = flags.container_port {
            bail!(
                "--container-port {port} describes the port of an intercept made from flags, \
                 and none is: the configuration's intercepts have their own ports. For the \
                 containerPort the consumers send, give --port {port}"
            );
        }
        // Given to resolve(), the ID would replace the file's intercepts
        // with one that matches everything.
        args.intercept.intercept_id = None;
    }
    let spec = args.resolve()?;
    if !described && spec.file.intercepts.is_none() {
        // resolve() then gives the mock's default intercept, which matches
        // everything: nothing the user said.
        bail!(
            "the {} has no `intercepts`; {NO_INTERCEPT}",
            spec.intercepts_origin
        );
    }
    let origin = &spec.intercepts_origin;
    let ids: Vec<&str> = spec.intercepts.iter().map(|i| i.id.as_str()).collect();
    let mine = match (&chosen, ids.as_slice(), mine) {
        (_, [], _) => bail!("the {origin} declares no intercept: there is nothing to evaluate"),
        (Some(id), _, _) if ids.contains(&id.as_str()) => id.clone(),
        (Some(id), _, Mine::Any) => id.clone(),
        (Some(id), _, Mine::Known) => bail!(
            "--intercept-id {id:?} is not among the intercepts of the {origin} ({})",
            ids.join(", ")
        ),
        (None, [only], _) => (*only).to_owned(),
        (None, _, _) => bail!(
            "the {origin} declares {} intercepts ({}): say which one is the workstation's with \
             --intercept-id",
            ids.len(),
            ids.join(", ")
        ),
    };
    let workload = spec.workload()?;
    Ok(Chosen {
        spec,
        workload,
        mine,
    })
}

/// Live, the APIs decide with their own intercepts: a flag that describes
/// one belongs to an offline evaluation, and is refused by name.
pub(crate) fn refuse_offline_flags(args: &WorkloadArgs) -> anyhow::Result<()> {
    let flags = &args.intercept;
    let offline_only = [
        (!flags.http_header.is_empty(), "--http-header"),
        (!flags.http_path_equal.is_empty(), "--http-path-equal"),
        (!flags.http_path_prefix.is_empty(), "--http-path-prefix"),
        (!flags.http_path_regex.is_empty(), "--http-path-regex"),
        (!flags.http_meta.is_empty(), "--http-meta"),
        (flags.container_port.is_some(), "--container-port"),
        (args.config.is_some(), "--config"),
        (
            args.telepresence_version.is_some(),
            "--telepresence-version",
        ),
        (!args.workload_ports.is_empty(), "--workload-port"),
    ];
    if let Some((_, flag)) = offline_only.iter().find(|(given, _)| *given) {
        bail!(
            "{flag} describes the intercept for an offline evaluation, but --cluster-api and \
             --workstation-api ask the live APIs, which decide with their own intercepts: drop \
             {flag}, or drop the API flags"
        );
    }
    Ok(())
}
