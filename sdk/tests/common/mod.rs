//! Helpers shared by the Kafka tests.

use std::sync::mpsc;

use rdkafka::mocking::MockCluster;

/// librdkafka's mock cluster with one topic, on a thread of its own (it is
/// neither `Send` nor `Sync`), alive until this is dropped.
pub struct Broker {
    pub bootstrap: String,
    _stop: mpsc::Sender<()>,
}

#[allow(dead_code)] // a test binary may need several topics
pub fn start_broker(topic: &'static str, partitions: i32) -> Broker {
    start_broker_with(&[(topic, partitions)])
}

/// [`start_broker`] with several topics, each `(name, partitions)`.
pub fn start_broker_with(topics: &[(&'static str, i32)]) -> Broker {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let topics = topics.to_vec();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).expect("mock cluster starts");
        for (topic, partitions) in topics {
            cluster
                .create_topic(topic, partitions, 1)
                .expect("topic created");
        }
        ready_tx.send(cluster.bootstrap_servers()).unwrap();
        let _ = stop_rx.recv(); // returns when the sender is dropped
    });
    Broker {
        bootstrap: ready_rx.recv().unwrap(),
        _stop: stop_tx,
    }
}

/// Produces messages `ids` to `partition(id)` with payload `id` and the
/// headers `headers(id)`, up to `in_flight` at once; returns where each landed.
#[allow(dead_code)] // a test binary may produce keyed messages only
pub async fn produce(
    broker: &Broker,
    topic: &str,
    ids: std::ops::Range<usize>,
    in_flight: usize,
    partition: impl Fn(usize) -> i32,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> std::collections::BTreeMap<usize, (i32, i64)> {
    produce_keyed(broker, topic, ids, in_flight, partition, headers, |_| None).await
}

/// [`produce`], with the record key `key(id)`.
pub async fn produce_keyed(
    broker: &Broker,
    topic: &str,
    ids: std::ops::Range<usize>,
    in_flight: usize,
    partition: impl Fn(usize) -> i32,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
    key: impl Fn(usize) -> Option<Vec<u8>>,
) -> std::collections::BTreeMap<usize, (i32, i64)> {
    use futures_util::StreamExt;
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let sends = ids.map(|id| {
        let (producer, partition, headers) = (&producer, &partition, &headers);
        let key = key(id);
        async move {
            let payload = id.to_string();
            let mut owned = OwnedHeaders::new();
            for (key, value) in headers(id) {
                owned = owned.insert(Header {
                    key,
                    value: Some(&value),
                });
            }
            let mut record = FutureRecord::<[u8], _>::to(topic)
                .payload(&payload)
                .partition(partition(id))
                .headers(owned);
            if let Some(key) = &key {
                record = record.key(key.as_slice());
            }
            let delivery = producer
                .send(record, std::time::Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
            (id, (delivery.partition, delivery.offset))
        }
    });
    futures_util::stream::iter(sends)
        .buffered(in_flight)
        .collect()
        .await
}

/// The committed offset of every partition of `topic` (0..`partitions`)
/// that has one, for the group of `consumer`.
#[allow(dead_code)] // not every test binary reads commits
pub fn committed(
    consumer: &impl rdkafka::consumer::Consumer,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    consumer
        .committed_offsets(list, std::time::Duration::from_secs(5))
        .map(|list| {
            list.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
