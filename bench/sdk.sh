#!/usr/bin/env bash
# The SDK's criterion benchmarks, several times; where an uncached
# decision's time goes, layer by layer; and a consumer's throughput with and
# without the SDK through an in-process Kafka.
# Results: bench/results/sdk.jsonl, breakdown.jsonl and kafka.jsonl.
#
#   bench/sdk.sh [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
: > bench/results/sdk.jsonl
: > bench/results/breakdown.jsonl
: > bench/results/kafka.jsonl
cargo build --release -q -p tpk-load
for round in $(seq "$rounds"); do
    rm -rf target/criterion
    cargo bench -q -p telepresence-kafka --bench decision -- --warm-up-time 2 --measurement-time 5 >/dev/null
    python3 bench/criterion_results.py "$round" >> bench/results/sdk.jsonl
    result=$(target/release/tpk-load breakdown --queries 20000 --json)
    echo "{\"round\":$round,\"result\":$result}" >> bench/results/breakdown.jsonl
    result=$(target/release/tpk-load kafka --messages 200000 --cache-ttl 60 --repeat 5 --json)
    echo "{\"round\":$round,\"result\":$result}" >> bench/results/kafka.jsonl
    echo "round $round done"
done
python3 bench/summarize.py
python3 bench/chart.py
