#!/usr/bin/env bash
# The mock server against a Go net/http peer with the same handlers and
# matching rules, in the same run, on this machine, driven by two load
# generators (the project's own and wrk, a lean C client with one thread);
# then the mock server's memory, start-up time and image size.
# Results: bench/results/servers.jsonl.
#
#   bench/servers.sh [ROUNDS=3] [SECONDS=5]
#
# Needs Go and wrk (Debian: apt-get install golang-go wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-5}
out=bench/results/servers.jsonl
: > "$out"

cargo build --release -q -p telepresence-mock-server -p tpk-load
mkdir -p target/bench
(cd bench/go-peer && go build -o ../../target/bench/go-peer .)
load=target/release/tpk-load
id=4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders
intercept=(--intercept-id "$id" --http-header x-dev=alice --http-path-prefix /orders/ --http-meta owner=alice)

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
wait_healthy() { until curl -sf "http://127.0.0.1:$1/healthz" >/dev/null; do sleep 0.05; done; }

target/release/telepresence-mock-server --listen 127.0.0.1:9980 "${intercept[@]}" 2>/dev/null & pids+=($!)
mock_pid=$!
target/bench/go-peer -listen 127.0.0.1:9981 "${intercept[@]}" 2>/dev/null & pids+=($!)
go_pid=$!
wait_healthy 9980; wait_healthy 9981
# A server's CPU time so far (user and system), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

idle_kib=$(awk '/VmRSS/ {print $2}' /proc/$mock_pid/status)
echo "{\"kind\":\"idle_rss\",\"server\":\"mock\",\"kib\":$idle_kib}" >> "$out"

# Interleaved rounds, so that both servers see the same machine conditions.
for round in $(seq "$rounds"); do
    for c in 1 8 64 256; do
        for tool in tpk-load wrk; do
            for server in mock:9980:$mock_pid go:9981:$go_pid; do
                IFS=: read -r name port pid <<< "$server"
                # The server's own CPU per request, counted for wrk's runs,
                # which send nothing but the measured requests: the two
                # cores are shared with the load generator, so throughput
                # alone hides how much each server spends on a request.
                cpu=
                if [ "$tool" = wrk ]; then
                    before=$(cpu_ticks "$pid")
                    result=$(WRK_CONNECTIONS=$c wrk -t1 -c"$c" -d"${seconds}s" -s bench/consume-here.lua "http://127.0.0.1:$port" | tail -n 1)
                    cpu=",\"cpu_ticks\":$(( $(cpu_ticks "$pid") - before )),\"clk_tck\":$clk_tck"
                else
                    result=$($load run --url "http://127.0.0.1:$port" --concurrency "$c" --duration "${seconds}s" --json)
                fi
                echo "{\"kind\":\"throughput\",\"tool\":\"$tool\",\"server\":\"$name\",\"round\":$round$cpu,\"result\":$result}" >> "$out"
                echo "round $round, $tool, $name, concurrency $c: $(echo "$result" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["rps"]), "req/s, p99", r["latency_us"]["p99"], "us")')"
                # A run with errors measured something else than answers.
                echo "$result" | python3 -c 'import json,sys; n=json.load(sys.stdin)["errors"]; sys.exit(f"{n} errors: the figures are not answers" if n else 0)'

            done
        done
    done
done

# Memory after a million requests with the journal on (10 000 entries kept).
result=$($load run --url http://127.0.0.1:9980 --concurrency 64 --requests 1000000 --warmup 0s --rss-pid "$mock_pid" --json)
echo "{\"kind\":\"million\",\"server\":\"mock\",\"result\":$result}" >> "$out"
cleanup; pids=()
sleep 0.5

# Time from process start to the first 200 on /healthz.
result=$($load startup --runs 20 --url http://127.0.0.1:9980 --json -- target/release/telepresence-mock-server --listen 127.0.0.1:9980)
echo "{\"kind\":\"startup\",\"server\":\"mock\",\"result\":$result}" >> "$out"

if docker image inspect telepresence-mock-server:latest >/dev/null 2>&1; then
    size=$(docker image inspect -f '{{.Size}}' telepresence-mock-server:latest)
    echo "{\"kind\":\"image\",\"server\":\"mock\",\"bytes\":$size}" >> "$out"
fi
python3 bench/summarize.py
