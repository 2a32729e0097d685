//! The consumer's header options: what its SDK derives from a message and
//! forwards, so that tpk asks with the headers the consumer's queries carry.

use anyhow::anyhow;
use telepresence_kafka::{Baggage, Client, HeaderForwarding};

/// The options of the consumer's `ClientBuilder` that change which headers
/// the APIs see. Leave them out for a consumer built with the defaults.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct ForwardingArgs {
    /// The consumer reads baggage (its `baggage` option): `all` its members,
    /// or only these, comma-separated, each sent as a header of its name
    #[arg(
        long,
        value_name = "all|MEMBER,...",
        help_heading = "The consumer's SDK options"
    )]
    baggage: Option<String>,

    /// The consumer sends the record key as this header (its `key_as_header`)
    #[arg(long, value_name = "NAME", help_heading = "The consumer's SDK options")]
    key_as_header: Option<String>,

    /// The consumer forwards only these headers (its `allow_headers`;
    /// repeatable)
    #[arg(
        long = "allow-header",
        value_name = "NAME",
        help_heading = "The consumer's SDK options"
    )]
    allow: Vec<String>,

    /// The consumer never forwards this header (its `deny_headers`;
    /// repeatable)
    #[arg(
        long = "deny-header",
        value_name = "NAME",
        help_heading = "The consumer's SDK options"
    )]
    deny: Vec<String>,
}

impl ForwardingArgs {
    /// The forwarding rules, refused as the SDK refuses them (a derived
    /// header the rules would never send, say).
    pub(crate) fn rules(&self) -> anyhow::Result<HeaderForwarding> {
        let mut rules = HeaderForwarding::default();
        if !self.allow.is_empty() {
            rules = rules.allow(&self.allow);
        }
        if !self.deny.is_empty() {
            rules = rules.deny(&self.deny);
        }
        match self.baggage.as_deref().map(str::trim) {
            None => {}
            Some("all") => rules = rules.baggage(Baggage::all()),
            Some(members) => {
                let members: Vec<&str> = members.split(',').map(str::trim).collect();
                if members.iter().any(|m| m.is_empty()) {
                    return Err(anyhow!(
                        "--baggage {members:?}: `all`, or member names separated by commas",
                        members = self.baggage.as_deref().unwrap_or_default()
                    ));
                }
                rules = rules.baggage(Baggage::members(members));
            }
        }
        if let Some(name) = &self.key_as_header {
            rules = rules.key_as_header(name);
        }
        // The SDK checks its rules when a client is built; a client that
        // is never used is the one place those checks are offered.
        Client::builder()
            .api_url("http://127.0.0.1:9")
            .header_forwarding(rules.clone())
            .build()
            .map_err(|error| anyhow!("the consumer's header options: {error}"))?;
        Ok(rules)
    }
}
