#!/usr/bin/env bash
# Runs the fault and concurrency tests many times in a row while other
# processes keep every core busy, and stops at the first failure.
#
#   scripts/stress-tests.sh            # 20 rounds
#   scripts/stress-tests.sh 5          # 5 rounds
#
# A test that passes only on a quiet machine fails here. Each round's output
# goes to target/stress/round-N.log; the chaos test prints its seed there
# (rerun one with CHAOS_SEED=...).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-20}
logs=target/stress
mkdir -p "$logs"

sdk_tests=(--test chaos --test consumer_group --test faults)
process_tests=(--test process_kill)

# Build first, so that the rounds measure the tests, not the compiler.
cargo test -p telepresence-kafka --all-features "${sdk_tests[@]}" --no-run
cargo test -p telepresence-kafka-integration-tests "${process_tests[@]}" --no-run

# One busy loop per core, for the whole run.
hogs=()
for _ in $(seq "$(nproc)"); do
    (while :; do :; done) &
    hogs+=("$!")
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT

started=$(date +%s)
for round in $(seq "$rounds"); do
    log="$logs/round-$round.log"
    round_started=$(date +%s)
    if cargo test -p telepresence-kafka --all-features "${sdk_tests[@]}" -- --nocapture >"$log" 2>&1 &&
        cargo test -p telepresence-kafka-integration-tests "${process_tests[@]}" -- --nocapture >>"$log" 2>&1; then
        seed=$(grep -o 'chaos seed [0-9]*' "$log" | head -1)
        duplicates=$(grep -o '[0-9]* duplicates' "$log" | head -1)
        echo "round $round/$rounds passed in $(($(date +%s) - round_started)) s ($seed, $duplicates)"
    else
        echo "round $round/$rounds FAILED; see $log"
        grep -E 'chaos seed|panicked' "$log" || true
        exit 1
    fi
done
echo "$rounds rounds passed in $(($(date +%s) - started)) s with $(nproc) busy loops beside them"
