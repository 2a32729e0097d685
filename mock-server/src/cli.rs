//! The command line of `telepresence-mock-server`.
//!
//! The intercept flags are those of `telepresence intercept`, so a command
//! that starts a real intercept can start a matching mock with the same words.
//!
//! Public: [`main`], and the flags that describe a workload and its
//! intercepts ([`WorkloadArgs`], [`InterceptArgs`]), for other commands that
//! speak of intercepts in the same words (`tpk explain`, `tpk preview`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::config::{
    CONFIG_ENV, ConfigError, ConfigFile, ConfigOrigin, DEFAULT_LISTEN, resolve_listen,
};
use crate::harness::{MockServer, MockServerBuilder};
use crate::journal::{DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_CAPACITY};
use crate::limits::Limits;
use crate::workload::Workload;
use telepresence_api::{DEFAULT_CONTAINER_PORT, Intercept, Side, TelepresenceVersion, Wire};

/// A faithful mock of Telepresence's REST API server.
///
/// Serves /healthz, /consume-here and /intercept-info like the user daemon on
/// a workstation (--side client) or the traffic-agent in a pod (--side agent),
/// plus an admin API under /_mock/ to change intercepts, read the request
/// journal and inject faults.
#[derive(Debug, Parser)]
#[command(name = "telepresence-mock-server", version, max_term_width = 100)]
pub(crate) struct Args {
    /// Address to listen on [default: 127.0.0.1:9980]
    #[arg(long, value_name = "ADDR", env = "TELEPRESENCE_MOCK_LISTEN")]
    listen: Option<String>,

    /// Which side to mock: client (workstation) or agent (cluster) [default: client]
    #[arg(long, value_name = "SIDE")]
    side: Option<Side>,

    #[command(flatten)]
    workload: WorkloadArgs,

    /// Overrides the wire format of the release mocked: 2.25, 2.5 or 2.4
    /// (the format of 2.25+, 2.5 to 2.24, 2.4), keeping its other rules
    #[arg(long, value_name = "FORMAT")]
    wire: Option<Wire>,

    /// Print the TELEPRESENCE_API_* and TELEPRESENCE_INTERCEPT_ID variables a
    /// consumer needs, as `export` lines on stdout, once listening
    #[arg(long)]
    print_env: bool,

    /// Log level: error, warn, info, debug or trace (debug logs every request)
    #[arg(long, value_name = "L", default_value = "info")]
    log_level: tracing::Level,

    /// How many requests the journal keeps (0 turns it off)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_JOURNAL_CAPACITY)]
    journal_capacity: usize,

    /// How many bytes the journal keeps (0 turns it off); the oldest entries
    /// make room beyond it
    #[arg(long, value_name = "N", default_value_t = DEFAULT_JOURNAL_BYTES)]
    journal_bytes: usize,

    /// Do not serve the /_mock/ admin API
    #[arg(long)]
    no_admin: bool,

    /// Token the admin API requires (Authorization: Bearer TOKEN); also read
    /// from $TELEPRESENCE_MOCK_ADMIN_TOKEN. Listening beyond loopback without
    /// one, a token is generated and logged
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,

    /// Serve the admin API without a token even beyond loopback (anyone who
    /// reaches the port can change the intercepts)
    #[arg(long, conflicts_with = "admin_token")]
    no_admin_auth: bool,

    /// Largest request head (line and headers) in bytes; beyond it, 431
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_header_bytes, help_heading = "Limits")]
    max_header_bytes: usize,

    /// Most headers in one request; beyond it, 431
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers, help_heading = "Limits")]
    max_headers: usize,

    /// Largest request body (a form body read for path and containerPort, an
    /// admin request); beyond it, 413
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_body_bytes, help_heading = "Limits")]
    max_body_bytes: usize,

    /// Body bytes buffered at once across all requests; a body that finds no
    /// room waits for it, up to the read timeout, then gets 503
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_body_bytes_in_flight, help_heading = "Limits")]
    max_body_bytes_in_flight: usize,

    /// Time allowed to send a request's headers (then the connection is
    /// closed) and its form body (then 408), e.g. 10s or 500ms
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, help_heading = "Limits")]
    read_timeout: Duration,

    /// Connections served at once; more wait in the listen backlog
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections, help_heading = "Limits")]
    max_connections: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .ok_or_else(|| format!("`{text}` is not a duration such as 10s or 500ms"))
}

/// The flags that describe one intercept, as `telepresence intercept` takes
/// them: flatten them into another command with `#[command(flatten)]`.
#[derive(Clone, Debug, Default, clap::Args)]
#[non_exhaustive]
pub struct InterceptArgs {
    /// ID of the intercept the flags below describe (default: a new UUID, then `:mock`).
    #[arg(
        long,
        value_name = "ID",
        help_heading = "Intercept",
        help = "ID of the intercept the flags below describe [default: <uuid>:mock]"
    )]
    pub intercept_id: Option<String>,

    /// Intercepted container port [default: 8080]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..), help_heading = "Intercept")]
    pub container_port: Option<u16>,

    /// Header matchers, as `telepresence intercept --http-header` takes them.
    #[arg(
        long,
        value_name = "K=V",
        value_parser = parse_header_flag,
        help_heading = "Intercept",
        help = "Match requests with this header: NAME=VALUE or 'NAME: VALUE' (VALUE is a \
                regex when it has a metacharacter); `auto` matches \
                x-telepresence-intercept-id=<intercept id>; `all` matches everything. \
                Repeatable: all must match"
    )]
    pub http_header: Vec<HeaderFlag>,

    /// Match requests whose path equals P. The three path flags repeat
    /// (any may match) from Telepresence 2.25; before, one path flag at most
    #[arg(long, value_name = "P", help_heading = "Intercept")]
    pub http_path_equal: Vec<String>,

    /// Match requests whose path starts with P
    #[arg(long, value_name = "P", help_heading = "Intercept")]
    pub http_path_prefix: Vec<String>,

    /// Match requests whose path contains a match of the regex RE
    #[arg(long, value_name = "RE", help_heading = "Intercept")]
    pub http_path_regex: Vec<String>,

    /// Metadata KEY=VALUE returned by /intercept-info (repeatable)
    #[arg(long, visible_alias = "metadata", value_name = "K=V", value_parser = parse_key_value, help_heading = "Intercept")]
    pub http_meta: Vec<(String, String)>,
}

impl InterceptArgs {
    /// Whether any intercept flag was given.
    pub fn describes_an_intercept(&self) -> bool {
        self.intercept_id.is_some()
            || self.container_port.is_some()
            || !self.http_header.is_empty()
            || !self.http_path_equal.is_empty()
            || !self.http_path_prefix.is_empty()
            || !self.http_path_regex.is_empty()
            || !self.http_meta.is_empty()
    }

    /// The intercept the flags describe; its ID is generated when none was given.
    pub fn intercept(&self) -> Intercept {
        let id = self
            .intercept_id
            .clone()
            .unwrap_or_else(|| format!("{}:mock", uuid::Uuid::new_v4()));
        let mut intercept = Intercept::new(id.clone())
            .container_port(self.container_port.unwrap_or(DEFAULT_CONTAINER_PORT));
        for flag in &self.http_header {
            intercept = match flag {
                HeaderFlag::Match(name, value) => intercept.header(name, value),
                HeaderFlag::Auto => intercept.header("x-telepresence-intercept-id", &id),
                HeaderFlag::All => intercept,
            };
        }
        intercept.path_equal.clone_from(&self.http_path_equal);
        intercept.path_prefix.clone_from(&self.http_path_prefix);
        intercept.path_regex.clone_from(&self.http_path_regex);
        for (key, value) in &self.http_meta {
            intercept = intercept.metadata(key, value);
        }
        intercept
    }
}

/// What to mock, or to evaluate: a configuration file, a Telepresence
/// release, the workload's ports and the intercept flags. `tpk explain`
/// takes the same flags as the mock server.
#[derive(Clone, Debug, Default, clap::Args)]
#[non_exhaustive]
pub struct WorkloadArgs {
    /// The Telepresence release to mock, e.g. 2.27, 2.24.1 or 2.4: its wire
    /// format and its rules (2.4.8 and later)
    #[arg(
        long,
        value_name = "V",
        help = format!(
            "The Telepresence release to mock, e.g. 2.27, 2.24.1 or 2.4: its wire format \
             and its rules (2.4.8 and later) [default: {}, the newest release this mock knows]",
            TelepresenceVersion::NEWEST_KNOWN
        )
    )]
    pub telepresence_version: Option<TelepresenceVersion>,

    /// A container port of the workload, in the order of the traffic-agent's
    /// configuration; repeat for each port [default: the intercepts' ports]
    #[arg(long = "workload-port", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workload_ports: Vec<u16>,

    /// YAML (or JSON) configuration file; flags override its values.
    /// Without it, the YAML in $TELEPRESENCE_MOCK_CONFIG is read, if set
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub intercept: InterceptArgs,
}

/// A workload as [`WorkloadArgs`] describe it, merged with the
/// configuration file and checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkloadSpec {
    /// The configuration file (or `$TELEPRESENCE_MOCK_CONFIG`), as read;
    /// empty when there was none.
    pub file: ConfigFile,
    /// The intercepts: the flags' one intercept when any intercept flag was
    /// given, otherwise the file's.
    pub intercepts: Vec<Intercept>,
    /// Where the intercepts came from.
    pub intercepts_origin: ConfigOrigin,
    /// The release: the flag's, the file's, or the newest known.
    pub version: TelepresenceVersion,
    /// The workload's ports, when declared by a flag or the file.
    pub workload_ports: Option<Vec<u16>>,
}

impl WorkloadSpec {
    /// The workload, ready to decide.
    pub fn workload(&self) -> Result<Workload, ConfigError> {
        Workload::new(
            &self.intercepts,
            self.version,
            self.workload_ports.as_deref(),
        )
        .map_err(|e| ConfigError::invalid(&self.intercepts_origin, e))
    }
}

impl WorkloadArgs {
    /// Merges the configuration file (or `$TELEPRESENCE_MOCK_CONFIG`) with the
    /// flags, and checks the intercepts under the release's rules. Flags win;
    /// intercept flags, when any is given, describe the one intercept that
    /// replaces the file's. Errors name where the culprit came from.
    pub fn resolve(&self) -> Result<WorkloadSpec, ConfigError> {
        let (file, file_origin) = match &self.config {
            Some(path) => (ConfigFile::load(path)?, ConfigOrigin::File(path.clone())),
            None => match std::env::var(CONFIG_ENV) {
                Ok(yaml) if !yaml.trim().is_empty() => (
                    ConfigFile::parse(&yaml, &ConfigOrigin::Env)?,
                    ConfigOrigin::Env,
                ),
                _ => (ConfigFile::default(), ConfigOrigin::CommandLine),
            },
        };
        let (intercepts, intercepts_origin) =
            match (&file.intercepts, self.intercept.describes_an_intercept()) {
                (Some(list), false) => (list.clone(), file_origin),
                _ => (vec![self.intercept.intercept()], ConfigOrigin::CommandLine),
            };
        let version = self
            .telepresence_version
            .or(file.telepresence_version)
            .unwrap_or_default();
        let workload_ports = if self.workload_ports.is_empty() {
            file.container_ports.clone()
        } else {
            Some(self.workload_ports.clone())
        };
        let spec = WorkloadSpec {
            file,
            intercepts,
            intercepts_origin,
            version,
            workload_ports,
        };
        // Validate now, with the release finally chosen, so that the error
        // names where the intercepts came from rather than surfacing later as
        // a start failure.
        spec.workload()?;
        Ok(spec)
    }
}

/// One `--http-header` value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderFlag {
    /// `NAME=VALUE` or `NAME: VALUE`.
    Match(String, String),
    /// `auto`: match `x-telepresence-intercept-id` against the intercept's ID.
    Auto,
    /// `all`: no header condition.
    All,
}

fn parse_header_flag(s: &str) -> Result<HeaderFlag, String> {
    match s {
        "auto" => return Ok(HeaderFlag::Auto),
        "all" => return Ok(HeaderFlag::All),
        _ => {}
    }
    let at = s
        .find(['=', ':'])
        .ok_or_else(|| format!("`{s}` has no `=` or `:`; write NAME=VALUE or 'NAME: VALUE'"))?;
    let name = s[..at].trim();
    let value = if s[at..].starts_with(':') {
        s[at + 1..].trim_start()
    } else {
        &s[at + 1..]
    };
    if name.is_empty() {
        return Err(format!("`{s}` has an empty header name"));
    }
    Ok(HeaderFlag::Match(name.to_owned(), value.to_owned()))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` has no `=`; write KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{s}` has an empty key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The environment variable that may hold the admin token.
use telepresence_api::env::MOCK_ADMIN_TOKEN as ADMIN_TOKEN_ENV;

impl Args {
    /// The token given with `--admin-token` or in [`ADMIN_TOKEN_ENV`], each
    /// refusal naming where the token came from.
    fn given_admin_token(&self) -> Result<Option<String>, ConfigError> {
        let (token, origin) = match (&self.admin_token, std::env::var(ADMIN_TOKEN_ENV)) {
            (Some(token), _) => (token.clone(), "--admin-token"),
            (None, Ok(token)) => (token, ADMIN_TOKEN_ENV),
            (None, Err(_)) => return Ok(None),
        };
        let refuse = |reason: &str| {
            Err(ConfigError::invalid(
                &ConfigOrigin::CommandLine,
                format!("{origin}: {reason}"),
            ))
        };
        if token.is_empty() {
            return refuse("the admin token must not be empty");
        }
        if self.no_admin_auth {
            return refuse("a token and --no-admin-auth contradict each other; drop one");
        }
        Ok(Some(token))
    }

    /// Merges the configuration file (or `$TELEPRESENCE_MOCK_CONFIG`) with the
    /// flags. Flags win; intercept flags, when any is given, describe the one
    /// intercept that replaces the file's.
    fn to_builder(&self) -> Result<MockServerBuilder, ConfigError> {
        let WorkloadSpec {
            file,
            intercepts,
            intercepts_origin: _,
            version,
            workload_ports,
        } = self.workload.resolve()?;
        let wire = self.wire.or(file.wire);
        // The file's address was checked when the file was read.
        let listen = self
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let address = resolve_listen(&listen).map_err(|e| {
            ConfigError::invalid(&ConfigOrigin::CommandLine, format!("listen: {e}"))
        })?;
        let token = match self.given_admin_token()? {
            Some(token) => Some(token),
            None if !self.no_admin_auth && !address.ip().is_loopback() => {
                Some(uuid::Uuid::new_v4().simple().to_string())
            }
            None => None,
        };
        let limits = Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_body_bytes: self.max_body_bytes,
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
            read_timeout: self.read_timeout,
            max_connections: self.max_connections,
        };
        let mut builder = MockServer::builder()
            .limits(limits)
            .listen(listen)
            .side(self.side.or(file.side).unwrap_or_default())
            .telepresence_version(version)
            .intercepts(intercepts.clone())
            .journal_capacity(self.journal_capacity)
            .journal_bytes(self.journal_bytes)
            .admin(!self.no_admin);
        if let Some(token) = token {
            builder = builder.admin_token(token);
        }
        if let Some(wire) = wire {
            builder = builder.wire(wire);
        }
        if let Some(ports) = &workload_ports {
            builder = builder.workload_ports(ports.iter().copied());
        }
        Ok(builder)
    }
}

/// The `telepresence-mock-server` command: reads the flags from the command
/// line and serves until SIGTERM or Ctrl-C; the exit code says how it went
/// (2 for a configuration refused).
pub fn main() -> ExitCode {
    run(Args::parse())
}

fn run(args: Args) -> ExitCode {
    init_logging(args.log_level);
    let builder = match args.to_builder() {
        Ok(builder) => builder,
        Err(error) => {
            eprintln!("error: {}", crate::error::report(&error));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut signals = match ShutdownSignals::install() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("error: cannot listen for signals: {error}");
                return ExitCode::FAILURE;
            }
        };
        let server = match builder.start().await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("error: {}", crate::error::report(&error));
                return ExitCode::FAILURE;
            }
        };
        let token_given = args.admin_token.is_some() || std::env::var_os(ADMIN_TOKEN_ENV).is_some();
        announce(&server, !token_given);
        if args.no_admin_auth && server.has_admin_api() && !server.address().ip().is_loopback() {
            tracing::warn!(
                "--no-admin-auth: the admin API at {}/_mock/ is open to anyone who reaches the port; \
                 they can change every answer",
                server.url()
            );
        }
        if args.print_env {
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "{}", server.env());
            let _ = stdout.flush();
        }
        signals.recv().await;
        tracing::info!("shutting down; finishing requests in flight");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn init_logging(level: tracing::Level) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Intercepts the start-up line lists; it counts the others.
const LISTED_AT_START: usize = 10;

/// The one start-up line: where it listens and every intercept. A generated
/// admin token is shown, since nobody else knows it; a given one is not.
fn announce(server: &MockServer, token_generated: bool) {
    let intercepts = server.intercepts_in_force();
    let summary = if intercepts.is_empty() {
        "no intercepts".to_owned()
    } else {
        let list: Vec<String> = intercepts
            .iter()
            .take(LISTED_AT_START)
            .map(|i| format!("[{i}]"))
            .collect();
        let more = intercepts.len().saturating_sub(LISTED_AT_START);
        if more == 0 {
            format!("intercepts: {}", list.join(", "))
        } else {
            format!(
                "{} intercepts: {}, and {more} more (GET /_mock/intercepts lists them all)",
                intercepts.len(),
                list.join(", ")
            )
        }
    };
    let admin = match (server.has_admin_api(), server.admin_token()) {
        (false, _) => "no admin API".to_owned(),
        (true, None) => "admin API at /_mock/".to_owned(),
        (true, Some(token)) if token_generated => {
            format!("admin API at /_mock/ with token {token}")
        }
        (true, Some(_)) => "admin API at /_mock/ with the given token".to_owned(),
    };
    let version = server.telepresence_version();
    let newer = if version.is_newer_than_known() {
        format!(
            " (newer than {}, the newest release this mock knows: mocked with its rules)",
            TelepresenceVersion::NEWEST_KNOWN
        )
    } else {
        String::new()
    };
    let ports = server.workload_ports();
    tracing::info!(
        "listening on {} as the {} side of Telepresence {version}{newer} (wire {}, workload ports {}, {admin}); {summary}",
        server.url(),
        server.side(),
        server.wire(),
        crate::decision::port_list(&ports),
    );
}

/// SIGTERM and Ctrl-C, listened for from the moment this is built, so that a
/// signal sent right after the start-up line is never missed.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
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

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags_accept_both_spellings() {
        assert_eq!(
            parse_header_flag("x=y"),
            Ok(HeaderFlag::Match("x".into(), "y".into()))
        );
        assert_eq!(
            parse_header_flag("x: y"),
            Ok(HeaderFlag::Match("x".into(), "y".into()))
        );
        assert_eq!(
            parse_header_flag("x:y=z"),
            Ok(HeaderFlag::Match("x".into(), "y=z".into()))
        );
        assert_eq!(
            parse_header_flag("x=a:b"),
            Ok(HeaderFlag::Match("x".into(), "a:b".into()))
        );
        assert_eq!(
            parse_header_flag("x="),
            Ok(HeaderFlag::Match("x".into(), String::new()))
        );
        assert_eq!(parse_header_flag("auto"), Ok(HeaderFlag::Auto));
        assert_eq!(parse_header_flag("all"), Ok(HeaderFlag::All));
        assert!(
            parse_header_flag("xy")
                .unwrap_err()
                .contains("`xy` has no `=` or `:`")
        );
        assert!(
            parse_header_flag("=y")
                .unwrap_err()
                .contains("empty header name")
        );
    }

    #[test]
    fn flags_describe_one_intercept() {
        let args = Args::parse_from([
            "m",
            "--intercept-id",
            "id1",
            "--container-port",
            "9090",
            "--http-header",
            "x=y",
            "--http-header",
            "auto",
            "--http-path-prefix",
            "/api",
            "--http-meta",
            "a=b",
            "--metadata",
            "b=c",
        ]);
        assert_eq!(
            args.workload.intercept.intercept(),
            Intercept::new("id1")
                .container_port(9090)
                .header("x", "y")
                .header("x-telepresence-intercept-id", "id1")
                .path_prefix("/api")
                .metadata("a", "b")
                .metadata("b", "c")
        );
    }

    #[test]
    fn a_missing_intercept_id_is_generated() {
        let id = Args::parse_from(["m"]).workload.intercept.intercept().id;
        let (uuid, name) = id.split_once(':').unwrap();
        assert_eq!(name, "mock");
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn path_flags_repeat() {
        let args = Args::parse_from([
            "m",
            "--intercept-id",
            "i",
            "--http-path-equal",
            "/a",
            "--http-path-prefix",
            "/b",
            "--http-path-prefix",
            "/c",
            "--http-path-regex",
            "^/d",
        ]);
        assert_eq!(
            args.workload.intercept.intercept(),
            Intercept::new("i")
                .path_equal("/a")
                .path_prefix("/b")
                .path_prefix("/c")
                .path_regex("^/d")
        );
    }
}
