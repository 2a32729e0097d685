//! Read-process-write in transactions, through librdkafka's mock cluster
//! (in-process): the pod leaves alice's orders to her intercept and writes
//! an invoice for each other order in a transaction whose offsets cover the
//! orders it skipped too. An aborted transaction is rewound and done again.
//!
//! The mock cluster speaks the transactional protocol (producer IDs,
//! `AddOffsetsToTxn`, `TxnOffsetCommit`, `EndTxn`) but keeps nothing of it:
//! it stores no transactional offset and writes no abort marker. So these
//! tests check what the SDK hands to the transaction and what the consumer
//! reads again. No other broker here can do better with librdkafka: tansu
//! 0.6.0 has no `EndTxn` handler, and krafka's test broker answers `EndTxn`
//! only in versions 3 to 5 where librdkafka 2.12 sends 0 or 1
//! (docs/sdk.md, "Transactions: exactly once").

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::start_broker_with;
use futures_util::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use telepresence_kafka::stream::Filtered;
use telepresence_kafka::{Client, ErrorKind, FailurePolicy, WithRouting};
use telepresence_mock_server::{Intercept, MockServer, Side};

const ORDERS: &str = "orders";
const INVOICES: &str = "invoices";
const PARTITIONS: i32 = 2;
const COUNT: usize = 40;
const GROUP: &str = "invoicer";
const ALICE: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:invoicer";
/// Bounds every wait on the broker; none is a fixed sleep.
const PATIENCE: Duration = Duration::from_secs(30);

/// One order in four is alice's, and so are the last order of each
/// partition: the transaction must commit past skipped orders at the end.
fn is_alices(id: usize) -> bool {
    id % 4 == 0 || id >= COUNT - 2
}

fn bobs() -> BTreeSet<usize> {
    (0..COUNT).filter(|&id| !is_alices(id)).collect()
}

async fn produce_orders(broker: &common::Broker) {
    common::produce(
        broker,
        ORDERS,
        0..COUNT,
        8,
        |id| id as i32 % PARTITIONS,
        |id| {
            let dev = if is_alices(id) { "alice" } else { "bob" };
            vec![("x-dev", dev.to_owned())]
        },
    )
    .await;
}

/// The pod's consumer: its own partitions assigned (no group protocol to
/// wait for), nothing committed or stored by librdkafka.
fn consumer(broker: &common::Broker) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions
            .add_partition_offset(ORDERS, partition, Offset::Stored)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    consumer
}

fn producer(broker: &common::Broker) -> FutureProducer {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("transactional.id", "invoicer-pod")
        .create()
        .unwrap();
    producer.init_transactions(PATIENCE).unwrap();
    producer
}

/// One transaction: invoices for the orders handed out until at least
/// `count` more orders are dealt with (processed or skipped), then the
/// offsets, then a commit or an abort and a rewind. Returns the ids invoiced
/// and the offsets sent.
async fn transaction(
    tp: &Client,
    orders: &mut Filtered<'_, rdkafka::message::BorrowedMessage<'_>>,
    producer: &FutureProducer,
    count: u64,
    commit: bool,
) -> (Vec<usize>, BTreeMap<i32, i64>) {
    // The stream counts every delivery, those before a rewind included.
    let upto = orders.progress().total() + count;
    producer.begin_transaction().unwrap();
    let mut invoiced = Vec::new();
    let mut check = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while orders.progress().total() < upto {
        tokio::select! {
            order = orders.next() => {
                let order = order.expect("the stream does not end").expect("no error");
                let id = std::str::from_utf8(order.payload().unwrap()).unwrap().to_owned();
                let invoice = FutureRecord::<(), _>::to(INVOICES)
                    .payload(&id)
                    .with_routing(&tp.routing_headers(&order));
                producer.send(invoice, PATIENCE).await.map_err(|(e, _)| e).unwrap();
                invoiced.push(id.parse().unwrap());
                orders.done(&order).unwrap();
            }
            _ = check.tick() => {
                assert!(tokio::time::Instant::now() < deadline, "stuck at {:?}", orders.progress());
            }
        }
    }
    let offsets = orders
        .transaction_offsets()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap()))
        .collect();
    orders
        .send_offsets_to_transaction(producer, PATIENCE)
        .unwrap();
    assert_eq!(orders.transaction_offsets().count(), 0, "sent, not waiting");
    if commit {
        producer.commit_transaction(PATIENCE).unwrap();
    } else {
        producer.abort_transaction(PATIENCE).unwrap();
        orders.rewind(PATIENCE).unwrap();
    }
    (invoiced, offsets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_offsets_cover_skipped_orders_and_an_aborted_one_is_done_again() {
    let broker = start_broker_with(&[(ORDERS, PARTITIONS), (INVOICES, 1)]);
    produce_orders(&broker).await;
    let api = MockServer::builder()
        .side(Side::Agent)
        .intercept(Intercept::new(ALICE).header("x-dev", "alice"))
        .start()
        .await
        .unwrap();
    let tp = Client::builder()
        .api_url(api.url())
        .routing_headers(["x-dev"])
        .failure_policy(FailurePolicy::Fail)
        .build()
        .unwrap();
    let consumer = consumer(&broker);
    let producer = producer(&broker);
    let mut orders = tp.filter_stream(&consumer, 8).transactional();

    let (aborted, _) = transaction(&tp, &mut orders, &producer, 12, false).await;
    assert!(
        !aborted.is_empty(),
        "the first transaction invoiced some orders"
    );
    assert!(
        orders.transaction_offsets().count() == 0,
        "a rewind forgets what waited"
    );

    let (invoiced, offsets) = transaction(&tp, &mut orders, &producer, COUNT as u64, true).await;
    let invoiced_set: BTreeSet<usize> = invoiced.iter().copied().collect();
    assert_eq!(
        invoiced_set.len(),
        invoiced.len(),
        "each order once in the transaction"
    );
    assert_eq!(
        invoiced_set,
        bobs(),
        "after the rewind, every order of bob's again"
    );
    let half = (COUNT / PARTITIONS as usize) as i64;
    assert_eq!(
        offsets,
        BTreeMap::from([(0, half), (1, half)]),
        "the transaction's offsets cover every order, alice's skipped ones at the end included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_go_to_a_transaction_only_from_a_transactional_stream() {
    let broker = start_broker_with(&[(ORDERS, PARTITIONS), (INVOICES, 1)]);
    let consumer = consumer(&broker);
    let producer = producer(&broker);
    let tp = Client::disabled();
    let orders = tp.filter_stream(&consumer, 8);
    producer.begin_transaction().unwrap();
    let error = orders
        .send_offsets_to_transaction(&producer, PATIENCE)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("transactional()"), "{error}");
    producer.abort_transaction(PATIENCE).unwrap();
}
