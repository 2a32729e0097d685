//! The mock Telepresence API as the SDK's tests start and read it.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use telepresence_mock_server::{Intercept, MockServer, Side};

/// A server for `side` with one intercept, `id`, matching `x-dev: alice`.
pub async fn alice_api(side: Side, id: &str) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(Intercept::new(id).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

/// How many requests to `endpoint` the server answered.
pub async fn requests_to(server: &MockServer, endpoint: &str) -> usize {
    server
        .admin()
        .journal()
        .await
        .unwrap()
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .count()
}
