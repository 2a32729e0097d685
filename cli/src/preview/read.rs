//! Reading the end of a topic as an observer: no consumer group joined,
//! nothing committed, nothing that the topic's real consumers could notice.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http::HeaderMap;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use telepresence_kafka::{HeaderForwarding, HeaderList};

/// librdkafka settings that tpk sets itself: a `-X` naming one is refused,
/// since each is what keeps the preview invisible to the topic's consumers
/// (no group, no commit) or what tells it where a partition ends.
const OWN_SETTINGS: &[(&str, &str)] = &[
    ("bootstrap.servers", "use --brokers"),
    ("group.id", "tpk preview joins no consumer group"),
    ("group.instance.id", "tpk preview joins no consumer group"),
    ("enable.auto.commit", "tpk preview commits nothing"),
    ("enable.auto.offset.store", "tpk preview commits nothing"),
    (
        "enable.partition.eof",
        "tpk preview needs it to see a partition's end",
    ),
];

/// Where to read and how.
#[derive(Debug)]
pub(super) struct Source<'a> {
    /// Bootstrap servers.
    pub(super) brokers: &'a str,
    /// The topic.
    pub(super) topic: &'a str,
    /// How many messages at most to read from the end of each partition.
    pub(super) last: u64,
    /// Extra librdkafka settings (`-X`).
    pub(super) options: &'a [(String, String)],
    /// Bound on each metadata and offset request, and on a silence while
    /// catching up.
    pub(super) timeout: Duration,
    /// Whether to go on past the window (`--watch`).
    pub(super) watch: bool,
    /// How the consumers map a message's headers (and key) to the query's.
    pub(super) forwarding: HeaderForwarding,
}

/// What is read of one partition.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Window {
    /// The partition.
    pub(super) partition: i32,
    /// The first offset of the window: the high watermark minus `--last`, or
    /// the low watermark when the partition holds fewer.
    pub(super) from: i64,
    /// The high watermark when tpk started: the window ends before it.
    pub(super) to: i64,
    /// Messages read from this partition (with `--watch`, new ones too).
    pub(super) read: u64,
    /// The offset after the last message seen.
    #[serde(skip)]
    next: i64,
    /// Whether the window has been read to its end.
    #[serde(skip)]
    done: bool,
}

impl Window {
    /// How far into the window reading has gone, in offsets.
    fn progress(&self) -> u64 {
        if self.done {
            self.len()
        } else {
            u64::try_from(self.next.min(self.to) - self.from).unwrap_or(0)
        }
    }

    fn len(&self) -> u64 {
        u64::try_from(self.to - self.from).unwrap_or(0)
    }
}

/// A message as the preview keeps it: where it is and its headers.
#[derive(Clone, Debug)]
pub(super) struct Record {
    /// Its partition.
    pub(super) partition: i32,
    /// Its offset.
    pub(super) offset: i64,
    /// Its timestamp in milliseconds since the epoch, when it has one.
    pub(super) timestamp: Option<i64>,
    /// Its Kafka headers, in order.
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
    /// Its record key, when it has one.
    pub(super) key: Option<Vec<u8>>,
    /// The HTTP headers the SDK makes of them (without the caller's ID): what
    /// the APIs match on.
    pub(super) forwarded: HeaderMap,
}

impl Record {
    fn new(message: &BorrowedMessage<'_>, forwarding: &HeaderForwarding) -> Self {
        let headers: Vec<(String, Option<Vec<u8>>)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let mut record = Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            headers,
            key: message.key().map(<[u8]>::to_vec),
            forwarded: HeaderMap::new(),
        };
        // The consumers' rules: the histogram and the offline decision must
        // see exactly what a consumer's query would carry.
        let pairs = record.pairs();
        let forwarded = forwarding.forward_message(&record.message(&pairs)).headers;
        record.forwarded = forwarded;
        record
    }

    /// The headers as the SDK's `KafkaMessage` gives them.
    pub(super) fn pairs(&self) -> Vec<(&str, Option<&[u8]>)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect()
    }

    /// The message as the SDK takes it: these `pairs` and the key.
    pub(super) fn message<'a>(
        &'a self,
        pairs: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> HeaderList<'a> {
        crate::message::keyed(pairs, self.key.as_deref())
    }
}

/// A consumer assigned to the end of every partition of one topic.
pub(super) struct Reader {
    consumer: StreamConsumer,
    windows: Vec<Window>,
    topic: String,
    brokers: String,
    watch: bool,
    forwarding: HeaderForwarding,
    /// The last error librdkafka reported that it may recover from; said
    /// when reading stalls.
    last_error: Option<String>,
}

impl Reader {
    /// Reads the topic's partitions and watermarks, and assigns each
    /// partition at the start of its window.
    ///
    /// The window is computed from the watermarks read here rather than
    /// with `Offset::OffsetTail`: the tail would be taken from the end at the
    /// time of the fetch, so messages produced in between would shorten the
    /// window, and the count would no longer be `--last`.
    pub(super) async fn open(source: &Source<'_>) -> anyhow::Result<Self> {
        let consumer = consumer(source)?;
        let Source {
            brokers,
            topic,
            last,
            timeout,
            watch,
            ..
        } = *source;
        // librdkafka's metadata and offset calls block; block_in_place keeps
        // the runtime's other worker free meanwhile.
        let windows = tokio::task::block_in_place(|| {
            let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| {
                anyhow!(
                    "cannot get the metadata of topic {topic} from the brokers at {brokers} \
                         (--brokers or KAFKA_BROKERS): {e}; are they up and reachable from here?"
                )
            })?;
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            let partitions: Vec<i32> = match found {
                Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
                Some(t) => {
                    let code = RDKafkaErrorCode::from(t.error().expect("checked above"));
                    if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        bail!("topic {topic} does not exist at {brokers} (--topic or KAFKA_TOPIC)");
                    }
                    bail!("topic {topic} at {brokers} (--topic or KAFKA_TOPIC): {code}");
                }
                None => Vec::new(),
            };
            if partitions.is_empty() {
                bail!("topic {topic} does not exist at {brokers} (--topic or KAFKA_TOPIC)");
            }
            let mut windows = Vec::with_capacity(partitions.len());
            for partition in partitions {
                let (low, high) = consumer
                    .fetch_watermarks(topic, partition, timeout)
                    .with_context(|| {
                        format!("reading the offsets of {topic}/{partition} at {brokers}")
                    })?;
                let last = i64::try_from(last).unwrap_or(i64::MAX);
                let from = high.saturating_sub(last).max(low);
                windows.push(Window {
                    partition,
                    from,
                    to: high,
                    read: 0,
                    next: from,
                    done: from >= high,
                });
            }
            windows.sort_by_key(|w| w.partition);
            Ok::<_, anyhow::Error>(windows)
        })?;
        let mut assignment = TopicPartitionList::new();
        for window in &windows {
            // Without --watch, a partition with nothing in its window has
            // nothing to read.
            if watch || !window.done {
                assignment
                    .add_partition_offset(topic, window.partition, Offset::Offset(window.from))
                    .context("building the assignment")?;
            }
        }
        consumer
            .assign(&assignment)
            .with_context(|| format!("assigning the partitions of {topic}"))?;
        Ok(Self {
            consumer,
            windows,
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
            watch,
            forwarding: source.forwarding.clone(),
            last_error: None,
        })
    }

    /// The partitions, in order, with what was read of each.
    pub(super) fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// How many offsets the windows span together: the progress bar's length.
    pub(super) fn span(&self) -> u64 {
        self.windows.iter().map(Window::len).sum()
    }

    /// How far reading has gone into the windows, in offsets.
    pub(super) fn progress(&self) -> u64 {
        self.windows.iter().map(Window::progress).sum()
    }

    /// Whether every window has been read to its end.
    pub(super) fn caught_up(&self) -> bool {
        self.windows.iter().all(|w| w.done)
    }

    /// The partitions whose window is not read yet, for a stall's message.
    pub(super) fn stalled(&self) -> String {
        let pending: Vec<String> = self
            .windows
            .iter()
            .filter(|w| !w.done)
            .map(|w| format!("{} (at {} of {}..{})", w.partition, w.next, w.from, w.to))
            .collect();
        let cause = match &self.last_error {
            Some(error) => format!("; the last error: {error}"),
            None => String::new(),
        };
        format!(
            "reading {} at {} stalled: no message from partitions {}{cause}",
            self.topic,
            self.brokers,
            pending.join(", ")
        )
    }

    /// The next message to judge; `None` for an event that is not one (the
    /// end of a partition, a message past the window without `--watch`, an
    /// error librdkafka recovers from).
    pub(super) async fn next(&mut self) -> anyhow::Result<Option<Record>> {
        let received = self.consumer.recv().await;
        let message = match received {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                if let Some(window) = self.window(partition) {
                    window.done = true;
                }
                return Ok(None);
            }
            Err(error) => return self.failed(error).map(|()| None),
        };
        let watch = self.watch;
        let offset = message.offset();
        let partition = message.partition();
        // Not self.window(): the message borrows the consumer.
        let Some(window) = self.windows.iter_mut().find(|w| w.partition == partition) else {
            return Ok(None);
        };
        window.next = window.next.max(offset + 1);
        if window.next >= window.to {
            window.done = true;
        }
        if offset >= window.to && !watch {
            return Ok(None);
        }
        window.read += 1;
        Ok(Some(Record::new(&message, &self.forwarding)))
    }

    fn window(&mut self, partition: i32) -> Option<&mut Window> {
        self.windows.iter_mut().find(|w| w.partition == partition)
    }

    /// Stops on errors that will not go away, remembers the others:
    /// librdkafka reports a broker it reconnects to as an error too.
    fn failed(&mut self, error: KafkaError) -> anyhow::Result<()> {
        let code = error.rdkafka_error_code();
        let fatal = matches!(
            error,
            KafkaError::MessageConsumptionFatal(_) | KafkaError::Global(_)
        ) || matches!(
            code,
            Some(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Authentication
            )
        );
        if fatal {
            bail!("reading {} at {}: {error}", self.topic, self.brokers);
        }
        self.last_error = Some(error.to_string());
        Ok(())
    }
}

fn consumer(source: &Source<'_>) -> anyhow::Result<StreamConsumer> {
    let mut config = ClientConfig::new();
    for (key, value) in source.options {
        if let Some((_, why)) = OWN_SETTINGS.iter().find(|(own, _)| own == key) {
            bail!("-X {key}={value}: tpk sets {key} itself ({why})");
        }
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", source.brokers)
        .set("client.id", "tpk-preview")
        // librdkafka refuses assign() without a group ID, although a
        // consumer that assigns itself never joins the group. This one is
        // used only for that: never joined (no subscribe), nothing committed
        // or fetched under it (explicit offsets, no auto-commit), so the
        // brokers never hold a group by that name; it is unique so that no
        // real group's name could be taken by mistake.
        .set("group.id", own_group_id())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    config
        .create()
        .context("creating the Kafka consumer (--brokers, -X)")
}

/// A group ID nobody else uses: see [`consumer`] for why there is one.
fn own_group_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("tpk-preview-{}-{nanos:09}", std::process::id())
}
