#!/usr/bin/env bash
# Instructions per message in a consumer's task, counted by callgrind: the
# consumers of `tpk-load kafka`, each run alone, and what librdkafka spends
# on a message's headers. Instruction counts are the same whatever else the
# machine is doing, where the rates of bench/sdk.sh move from run to run.
# Results: bench/results/instructions.jsonl.
#
# How a fetch cuts the topic into batches varies from run to run, and with
# it the counts, by a few percent: each figure is the median of the rounds.
#
#   bench/instructions.sh [ROUNDS=3] [MESSAGES=200000]
#
# Needs valgrind. Builds tpk-load with its symbols in target/symbols.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
messages=${2:-200000}
out=bench/results/instructions.jsonl
: > "$out"

CARGO_TARGET_DIR=target/symbols CARGO_PROFILE_RELEASE_STRIP=false \
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -q -p tpk-load
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# drain is the consumer's task: everything it runs, from its first message
# to its last, librdkafka's calls included; the fetcher's threads are not.
functions=(
    'tpk_load::kafka::drain::{{closure}}'
    rd_kafka_queue_poll
    rd_kafka_message_headers
    rd_kafka_headers_destroy
    telepresence_kafka::client::Client::should_consume
    rd_kafka_offsets_store
)
for round in $(seq "$rounds"); do
    for consumer in baseline headers decisions cached; do
        valgrind --tool=callgrind --callgrind-out-file="$work/$consumer.out" \
            target/symbols/release/tpk-load kafka --messages "$messages" --only "$consumer" \
            >/dev/null 2>"$work/$consumer.log"
        calls=$(python3 bench/callgrind_calls.py "$work/$consumer.out" "${functions[@]}")
        echo "{\"round\":$round,\"consumer\":\"$consumer\",\"messages\":$messages,\"calls\":$calls}" >> "$out"
        echo "round $round, $consumer counted"
    done
done
python3 bench/summarize.py >/dev/null
