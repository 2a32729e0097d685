//! Routing context across hops: what a message being handled passes on to
//! the records and requests its handling produces.
//!
//! An intercept on the second service of a chain sees only what the first
//! one wrote. If the first drops the routing key, alice's order reaches her
//! workstation but the invoice it causes does not: the second service's pod
//! takes it. [`Client::routing_headers`](crate::Client::routing_headers)
//! gives the headers to carry on, taken from the message as they are.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::baggage::{self, Baggage};
use crate::headers::DerivedHeader;
use crate::message::KafkaMessage;

/// Which headers of a message carry its routing context: the names declared
/// to the builder, and, when the client reads baggage, the baggage carriers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Propagation {
    /// Lower case, each once.
    names: Vec<String>,
    baggage: Baggage,
}

impl Propagation {
    pub(crate) fn new(names: impl IntoIterator<Item = String>, baggage: Baggage) -> Self {
        let mut unique: Vec<String> = Vec::new();
        for name in names {
            let name = name.to_ascii_lowercase();
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Self {
            names: unique,
            baggage,
        }
    }

    /// The routing headers of `msg`: the first occurrence of each declared
    /// name, and every baggage carrier, in the message's order.
    pub(crate) fn collect<'m, M: KafkaMessage + ?Sized>(&self, msg: &'m M) -> RoutingHeaders<'m> {
        let mut routing = RoutingHeaders::default();
        if self.names.is_empty() && self.baggage.is_none() {
            return routing;
        }
        let mut taken: SmallVec<[bool; 8]> = SmallVec::from_elem(false, self.names.len());
        for (key, value) in msg.headers() {
            let value = value.unwrap_or_default();
            if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(key)) {
                // Telepresence reads a header's first occurrence; a later one
                // would route nothing and could mislead a reader.
                if !taken[i] {
                    taken[i] = true;
                    routing.headers.push((key, value));
                }
            } else if !self.baggage.is_none() && baggage::is_carrier(key) {
                routing.headers.push((key, value));
                // Malformed members are counted when the message is decided.
                let _ = self.baggage.read(key, value, |name, value| {
                    routing.members.push((name, value));
                });
            }
        }
        routing
    }
}

/// The routing context of a message: the headers to put on what handling it
/// produces, so that an intercept on the next service routes that as it
/// routed the message. Made by
/// [`Client::routing_headers`](crate::Client::routing_headers); it borrows
/// the message.
///
/// It holds, as the message has them, the first value of each header
/// declared with
/// [`ClientBuilder::routing_headers`](crate::ClientBuilder::routing_headers)
/// or [`decision_cache`](crate::ClientBuilder::decision_cache), and, when
/// the client reads [`Baggage`](crate::Baggage), every baggage header
/// (`baggage`, `uberctx-*`, `ot-baggage-*`) whole, so that the next hop
/// reads the same members. The record key is not carried: what you produce
/// has a key of its own.
///
/// Put it on a Kafka record with [`WithRouting::with_routing`], on any HTTP
/// request with [`to_header_map`](Self::to_header_map) (or `with_routing`
/// for `reqwest`, with the `reqwest` feature), or read it with
/// [`iter`](Self::iter).
///
/// ```
/// use telepresence_kafka::{Client, HeaderList};
///
/// let tp = Client::builder().routing_headers(["x-dev"]).build()?;
/// let headers: &[(&str, Option<&[u8]>)] = &[
///     ("trace-id", Some(b"7f3a")),
///     ("x-dev", Some(b"alice")),
/// ];
/// let message = HeaderList::new(headers);
/// let routing = tp.routing_headers(&message);
/// assert_eq!(routing.iter().collect::<Vec<_>>(), [("x-dev", &b"alice"[..])]);
/// # Ok::<(), telepresence_kafka::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingHeaders<'m> {
    headers: SmallVec<[(&'m str, &'m [u8]); 4]>,
    /// The chosen baggage members, decoded, for HTTP.
    members: SmallVec<[DerivedHeader<'m>; 2]>,
}

impl<'m> RoutingHeaders<'m> {
    /// The headers, in the message's order; a null value is empty.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'m str, &'m [u8])> + '_ {
        self.headers.iter().copied()
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the message carries no routing context.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The first value of a header (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<&'m [u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value)
    }

    /// The headers as HTTP headers, for any HTTP client built on the `http`
    /// crate (hyper, reqwest, axum...). A Kafka header that HTTP cannot carry
    /// (a name that is not a token, a value with control characters) is left
    /// out.
    ///
    /// The baggage members the client reads are added as headers of their
    /// own too, after the others and unless a header of that name is there:
    /// Telepresence routes HTTP requests by plain headers only, so an
    /// intercept's `--http-header x-dev=alice` on the next service would not
    /// see `x-dev` inside `baggage`. (A Kafka record does not need them: the
    /// next consumer's client reads the same members.)
    ///
    /// ```
    /// use telepresence_kafka::{Baggage, Client, HeaderList};
    ///
    /// let tp = Client::builder().baggage(Baggage::members(["x-dev"])).build()?;
    /// let headers: &[(&str, Option<&[u8]>)] = &[("baggage", Some(b"x-dev=alice,tenant=acme"))];
    /// let message = HeaderList::new(headers);
    /// let http = tp.routing_headers(&message).to_header_map();
    /// assert_eq!(http["baggage"], "x-dev=alice,tenant=acme");
    /// assert_eq!(http["x-dev"], "alice");
    /// assert!(!http.contains_key("tenant"), "not a member the client reads");
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in self.http() {
            map.append(name, value);
        }
        map
    }

    /// The headers HTTP can carry, converted, then the baggage members of
    /// names not sent yet (the first of each name).
    fn http(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let convert = |key: &str, value: &[u8]| {
            let name = HeaderName::from_bytes(key.as_bytes()).ok()?;
            let value = HeaderValue::from_bytes(value).ok()?;
            Some((name, value))
        };
        let own = self.headers.iter().filter_map(move |&(k, v)| convert(k, v));
        let members = self
            .members
            .iter()
            .enumerate()
            .filter(|&(i, (name, _))| {
                let named = |key: &&str| key.eq_ignore_ascii_case(name);
                !self.headers.iter().any(|(key, _)| named(key))
                    && !self.members[..i].iter().any(|(key, _)| named(key))
            })
            .filter_map(move |(_, (k, v))| convert(k, v));
        own.chain(members)
    }

    /// These headers added to `headers`, those whose name `headers` lacks:
    /// a header the application sets itself wins. For rdkafka records;
    /// [`WithRouting`] does it for `FutureRecord` and `BaseRecord`.
    ///
    /// ```
    /// use telepresence_kafka::rdkafka::message::{Header, Headers, OwnedHeaders};
    /// use telepresence_kafka::{Client, HeaderList};
    ///
    /// let tp = Client::builder().routing_headers(["x-dev"]).build()?;
    /// let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice"))];
    /// let own = OwnedHeaders::new().insert(Header { key: "invoice", value: Some("42") });
    /// let all = tp.routing_headers(&HeaderList::new(headers)).add_to(Some(own));
    /// assert_eq!(all.count(), 2);
    /// assert_eq!(all.get(1).value, Some(&b"alice"[..]));
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    #[cfg(feature = "rdkafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
    pub fn add_to(
        &self,
        headers: Option<rdkafka::message::OwnedHeaders>,
    ) -> rdkafka::message::OwnedHeaders {
        use rdkafka::message::{Header, Headers, OwnedHeaders};
        let mut headers = headers.unwrap_or_else(|| OwnedHeaders::new_with_capacity(self.len()));
        for &(key, value) in &self.headers {
            let present = headers.iter().any(|h| h.key.eq_ignore_ascii_case(key));
            if !present {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        headers
    }
}

impl<'r, 'm> IntoIterator for &'r RoutingHeaders<'m> {
    type Item = (&'m str, &'m [u8]);
    type IntoIter = std::iter::Copied<std::slice::Iter<'r, (&'m str, &'m [u8])>>;

    fn into_iter(self) -> Self::IntoIter {
        self.headers.iter().copied()
    }
}

/// Puts a message's routing context on something its handling produces: a
/// Kafka record (with the `rdkafka` feature) or a `reqwest` request (with the
/// `reqwest` feature). A header the record or request already has wins.
///
#[cfg_attr(feature = "rdkafka", doc = "```no_run")]
#[cfg_attr(not(feature = "rdkafka"), doc = "```ignore")]
/// use std::time::Duration;
/// use telepresence_kafka::rdkafka::message::BorrowedMessage;
/// use telepresence_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
/// use telepresence_kafka::{Client, WithRouting};
///
/// # async fn handle(tp: &Client, producer: &FutureProducer, order: &BorrowedMessage<'_>) {
/// let invoice = FutureRecord::<(), _>::to("invoices")
///     .payload("invoice for the order")
///     .with_routing(&tp.routing_headers(order));
/// producer.send(invoice, Duration::from_secs(5)).await.expect("sent");
/// # }
/// ```
pub trait WithRouting: Sized {
    /// Adds the routing headers this lacks.
    fn with_routing(self, routing: &RoutingHeaders<'_>) -> Self;
}

#[cfg(feature = "rdkafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
impl<K, P> WithRouting for rdkafka::producer::FutureRecord<'_, K, P>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    fn with_routing(mut self, routing: &RoutingHeaders<'_>) -> Self {
        if !routing.is_empty() {
            self.headers = Some(routing.add_to(self.headers.take()));
        }
        self
    }
}

#[cfg(feature = "rdkafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "rdkafka")))]
impl<K, P, D> WithRouting for rdkafka::producer::BaseRecord<'_, K, P, D>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
    D: rdkafka::util::IntoOpaque,
{
    fn with_routing(mut self, routing: &RoutingHeaders<'_>) -> Self {
        if !routing.is_empty() {
            self.headers = Some(routing.add_to(self.headers.take()));
        }
        self
    }
}

/// Appends each header: a value the application set before stays first,
/// and Telepresence reads the first.
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
impl WithRouting for reqwest::RequestBuilder {
    fn with_routing(self, routing: &RoutingHeaders<'_>) -> Self {
        routing
            .http()
            .fold(self, |request, (name, value)| request.header(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderList;

    fn collect(
        propagation: &Propagation,
        headers: &[(&str, Option<&[u8]>)],
    ) -> Vec<(String, Vec<u8>)> {
        let message = HeaderList::new(headers);
        let routing = propagation.collect(&message);
        routing
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect()
    }

    fn owned(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn declared_names_are_carried_first_occurrence_only_in_the_messages_case() {
        let propagation =
            Propagation::new(["X-Dev".to_owned(), "x-path".to_owned()], Baggage::none());
        let headers: &[(&str, Option<&[u8]>)] = &[
            ("trace", Some(b"1")),
            ("x-DEV", Some(b"alice")),
            ("x-path", None),
            ("x-dev", Some(b"bob")),
            ("baggage", Some(b"x-dev=carol")),
        ];
        assert_eq!(
            collect(&propagation, headers),
            owned(&[("x-DEV", b"alice"), ("x-path", b"")])
        );
    }

    #[test]
    fn with_baggage_every_carrier_is_carried_whole() {
        let propagation = Propagation::new(["x-dev".to_owned()], Baggage::all());
        let headers: &[(&str, Option<&[u8]>)] = &[
            ("baggage", Some(b"x-dev=alice;ttl=1,other=2")),
            ("uberctx-tenant", Some(b"acme")),
            ("Baggage", Some(b"more=3")),
            ("ot-baggage-x", Some(b"y")),
            ("uberctx", Some(b"not a carrier: no member name")),
        ];
        assert_eq!(
            collect(&propagation, headers),
            owned(&[
                ("baggage", b"x-dev=alice;ttl=1,other=2"),
                ("uberctx-tenant", b"acme"),
                ("Baggage", b"more=3"),
                ("ot-baggage-x", b"y"),
            ])
        );
    }

    #[test]
    fn nothing_declared_carries_nothing() {
        let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice")), ("baggage", None)];
        assert!(collect(&Propagation::default(), headers).is_empty());
    }

    #[test]
    fn http_leaves_out_what_it_cannot_carry() {
        let propagation =
            Propagation::new(["x-dev".to_owned(), "bad name".to_owned()], Baggage::none());
        let headers: &[(&str, Option<&[u8]>)] =
            &[("x-dev", Some(b"ali\x00ce")), ("bad name", Some(b"v"))];
        let message = HeaderList::new(headers);
        let routing = propagation.collect(&message);
        assert_eq!(routing.len(), 2, "Kafka can carry both");
        assert!(routing.to_header_map().is_empty(), "HTTP neither");
    }

    #[test]
    fn over_http_members_become_headers_unless_a_header_of_their_name_is_there() {
        let propagation = Propagation::new(["x-dev".to_owned()], Baggage::all());
        let headers: &[(&str, Option<&[u8]>)] = &[
            (
                "baggage",
                Some(b"x-dev=alice,tenant=acme%20corp,tenant=other"),
            ),
            ("uberctx-x-dev", Some(b"carol")),
        ];
        let message = HeaderList::new(headers);
        let http = propagation.collect(&message).to_header_map();
        assert_eq!(http["x-dev"], "alice", "the first member of a name");
        assert_eq!(http.get_all("x-dev").iter().count(), 1);
        assert_eq!(http["tenant"], "acme corp", "decoded");
        assert_eq!(http.get_all("tenant").iter().count(), 1);

        let headers: &[(&str, Option<&[u8]>)] =
            &[("baggage", Some(b"x-dev=alice")), ("x-dev", Some(b"bob"))];
        let message = HeaderList::new(headers);
        let http = propagation.collect(&message).to_header_map();
        let values: Vec<_> = http.get_all("x-dev").iter().collect();
        assert_eq!(values, ["bob"], "the message's own header wins");
    }

    #[cfg(feature = "rdkafka")]
    #[test]
    fn a_records_own_header_wins() {
        use rdkafka::message::{Header, Headers, OwnedHeaders};
        let propagation =
            Propagation::new(["x-dev".to_owned(), "x-path".to_owned()], Baggage::none());
        let headers: &[(&str, Option<&[u8]>)] =
            &[("x-dev", Some(b"alice")), ("x-path", Some(b"/orders/1"))];
        let message = HeaderList::new(headers);
        let own = OwnedHeaders::new().insert(Header {
            key: "X-Dev",
            value: Some("bob"),
        });
        let all = propagation.collect(&message).add_to(Some(own));
        let pairs: Vec<_> = all.iter().map(|h| (h.key, h.value)).collect();
        assert_eq!(
            pairs,
            [
                ("X-Dev", Some(&b"bob"[..])),
                ("x-path", Some(&b"/orders/1"[..]))
            ]
        );
    }
}
