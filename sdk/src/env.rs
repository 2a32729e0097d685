//! The environment Telepresence gives a consumer.

use std::ffi::OsString;
use std::net::Ipv6Addr;

use url::Url;

use crate::error::Error;

/// Port of the API server. Unset, empty or `0`: not under Telepresence.
pub const API_PORT_ENV: &str = telepresence_api::env::API_PORT;
/// Host of the API server (2.25+). Unset or empty: `localhost`.
pub const API_HOST_ENV: &str = telepresence_api::env::API_HOST;
/// The intercept's ID, set only on a workstation.
pub const INTERCEPT_ID_ENV: &str = telepresence_api::env::INTERCEPT_ID;
/// The container port to send with every query: **this crate's own
/// variable**, not one Telepresence sets. Set it in the pod (and on the
/// workstation) when the workload has several ports: without it the pod's
/// API looks only at the workload's first port (Telepresence 2.25 and
/// later) or at none (older releases). Unset, empty or `0`: no port sent.
pub const CONTAINER_PORT_ENV: &str = telepresence_api::env::CONTAINER_PORT;

/// What the three variables say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnvSettings {
    /// The API's base URL, or `None` when not under Telepresence.
    pub(crate) api: Option<Url>,
    /// Empty in the cluster.
    pub(crate) intercept_id: String,
    /// From [`CONTAINER_PORT_ENV`].
    pub(crate) container_port: Option<u16>,
}

/// Reads the variables through `lookup` (the process environment, or a test's map).
pub(crate) fn read(lookup: impl Fn(&str) -> Option<OsString>) -> Result<EnvSettings, Error> {
    let text = |name: &str| -> Result<String, Error> {
        match lookup(name) {
            None => Ok(String::new()),
            Some(value) => value.into_string().map_err(|value| {
                Error::config(format!("{name}={value:?}: the value is not valid UTF-8"))
            }),
        }
    };
    let port = text(API_PORT_ENV)?;
    let host = text(API_HOST_ENV)?;
    let intercept_id = text(INTERCEPT_ID_ENV)?;
    let container_port = text(CONTAINER_PORT_ENV)?;
    let container_port = parse_port(&container_port).map_err(|reason| {
        Error::config(format!("{CONTAINER_PORT_ENV}={container_port:?}: {reason}"))
    })?;
    validate_intercept_id(&intercept_id).map_err(|reason| {
        Error::config(format!("{INTERCEPT_ID_ENV}={intercept_id:?}: {reason}"))
    })?;
    let api = match parse_port(&port)
        .map_err(|reason| Error::config(format!("{API_PORT_ENV}={port:?}: {reason}")))?
    {
        None => None,
        Some(port) => Some(
            api_url(&host, port)
                .map_err(|reason| Error::config(format!("{API_HOST_ENV}={host:?}: {reason}")))?,
        ),
    };
    Ok(EnvSettings {
        api,
        intercept_id,
        container_port,
    })
}

/// `None` for "not under Telepresence" (empty or `0`).
fn parse_port(value: &str) -> Result<Option<u16>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a port number (digits only, 1 to 65535)".to_owned());
    }
    match value.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(port) if port <= u32::from(u16::MAX) => Ok(Some(port as u16)),
        _ => Err("out of range (1 to 65535)".to_owned()),
    }
}

/// The base URL for a host (a name, an IPv4 address, or an IPv6 address with
/// or without brackets; empty is `localhost`) and a port.
pub(crate) fn api_url(host: &str, port: u16) -> Result<Url, String> {
    let host = if host.is_empty() { "localhost" } else { host };
    let authority = if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let url = Url::parse(&format!("http://{authority}/"))
        .map_err(|e| format!("not a valid host name or IP address ({e})"))?;
    if url.path() != "/" || url.query().is_some() || url.username() != "" {
        return Err("not a valid host name or IP address".to_owned());
    }
    Ok(url)
}

/// The ID goes into an HTTP header, so it must be a valid header value.
pub(crate) fn validate_intercept_id(id: &str) -> Result<(), String> {
    http::HeaderValue::from_str(id).map(drop).map_err(|_| {
        "contains control characters, so it cannot be sent in an HTTP header".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn read_vars(vars: &[(&str, &str)]) -> Result<EnvSettings, Error> {
        read(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn no_port_empty_port_or_zero_means_not_under_telepresence() {
        for vars in [
            &[][..],
            &[(API_PORT_ENV, "")][..],
            &[(API_PORT_ENV, "0")][..],
            &[(API_PORT_ENV, "000"), (API_HOST_ENV, "api")][..],
        ] {
            assert_eq!(read_vars(vars).unwrap().api, None, "{vars:?}");
        }
    }

    #[test]
    fn a_port_alone_means_localhost() {
        let settings = read_vars(&[(API_PORT_ENV, "9980")]).unwrap();
        assert_eq!(settings.api.unwrap().as_str(), "http://localhost:9980/");
        assert_eq!(settings.intercept_id, "");
        let settings = read_vars(&[(API_PORT_ENV, "09980"), (API_HOST_ENV, "")]).unwrap();
        assert_eq!(settings.api.unwrap().as_str(), "http://localhost:9980/");
    }

    #[test]
    fn hosts_can_be_names_or_addresses() {
        for (host, url) in [
            ("tp-api", "http://tp-api:9980/"),
            ("my_container", "http://my_container:9980/"),
            ("10.0.0.7", "http://10.0.0.7:9980/"),
            ("::1", "http://[::1]:9980/"),
            ("[::1]", "http://[::1]:9980/"),
        ] {
            let settings = read_vars(&[(API_PORT_ENV, "9980"), (API_HOST_ENV, host)]).unwrap();
            assert_eq!(settings.api.unwrap().as_str(), url, "{host}");
        }
    }

    #[test]
    fn every_invalid_value_names_the_variable_and_the_value() {
        let cases = [
            (
                vec![(API_PORT_ENV, "abc")],
                "TELEPRESENCE_API_PORT=\"abc\": not a port number",
            ),
            (
                vec![(API_PORT_ENV, " 9980")],
                "TELEPRESENCE_API_PORT=\" 9980\": not a port number",
            ),
            (
                vec![(API_PORT_ENV, "+9980")],
                "TELEPRESENCE_API_PORT=\"+9980\": not a port number",
            ),
            (
                vec![(API_PORT_ENV, "-1")],
                "TELEPRESENCE_API_PORT=\"-1\": not a port number",
            ),
            (
                vec![(API_PORT_ENV, "65536")],
                "TELEPRESENCE_API_PORT=\"65536\": out of range",
            ),
            (
                vec![(API_PORT_ENV, "99999999999")],
                "TELEPRESENCE_API_PORT=\"99999999999\": out of range",
            ),
            (
                vec![(API_PORT_ENV, "80"), (API_HOST_ENV, "a b")],
                "TELEPRESENCE_API_HOST=\"a b\": not a valid host",
            ),
            (
                vec![(API_PORT_ENV, "80"), (API_HOST_ENV, "host/path")],
                "TELEPRESENCE_API_HOST=\"host/path\": not a valid host",
            ),
            (
                vec![(API_PORT_ENV, "80"), (API_HOST_ENV, "user@host")],
                "TELEPRESENCE_API_HOST=\"user@host\": not a valid host",
            ),
            (
                vec![(INTERCEPT_ID_ENV, "a\nb")],
                "TELEPRESENCE_INTERCEPT_ID=\"a\\nb\": contains control characters",
            ),
        ];
        for (vars, expected) in cases {
            let err = read_vars(&vars).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().starts_with(expected), "{vars:?}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_are_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;
        let err = read(|name| (name == API_PORT_ENV).then(|| OsString::from_vec(vec![0xff])))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("TELEPRESENCE_API_PORT="),
            "{err}"
        );
    }

    #[test]
    fn the_container_port_is_our_own_variable() {
        let settings = read_vars(&[(API_PORT_ENV, "1"), (CONTAINER_PORT_ENV, "9090")]).unwrap();
        assert_eq!(settings.container_port, Some(9090));
        for unset in ["", "0"] {
            let settings = read_vars(&[(CONTAINER_PORT_ENV, unset)]).unwrap();
            assert_eq!(settings.container_port, None);
        }
        let err = read_vars(&[(CONTAINER_PORT_ENV, "http")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("TELEPRESENCE_KAFKA_CONTAINER_PORT=\"http\": not a port number"),
            "{err}"
        );
    }

    #[test]
    fn the_intercept_id_is_read_as_is() {
        let settings = read_vars(&[(API_PORT_ENV, "1"), (INTERCEPT_ID_ENV, "4b16:echo")]).unwrap();
        assert_eq!(settings.intercept_id, "4b16:echo");
    }
}
