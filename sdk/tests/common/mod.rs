//! Helpers shared by the Kafka tests.

use std::sync::mpsc;

use rdkafka::mocking::MockCluster;

/// librdkafka's mock cluster with one topic, on a thread of its own (it is
/// neither `Send` nor `Sync`), alive until this is dropped.
pub struct Broker {
    pub bootstrap: String,
    _stop: mpsc::Sender<()>,
}

pub fn start_broker(topic: &'static str, partitions: i32) -> Broker {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).expect("mock cluster starts");
        cluster
            .create_topic(topic, partitions, 1)
            .expect("topic created");
        ready_tx.send(cluster.bootstrap_servers()).unwrap();
        let _ = stop_rx.recv(); // returns when the sender is dropped
    });
    Broker {
        bootstrap: ready_rx.recv().unwrap(),
        _stop: stop_tx,
    }
}
