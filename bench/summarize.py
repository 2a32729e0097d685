"""Summarises bench/results/*.jsonl as Markdown tables: medians of the rounds
with their spread (min to max), and the ratios the targets are about.
Prints the tables and writes them to bench/results/summary.md."""
import json
import pathlib
import statistics

results = pathlib.Path(__file__).resolve().parent / "results"


def load(name):
    path = results / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def spread(values, fmt):
    values = sorted(values)
    median = statistics.median(values)
    if len(values) == 1:
        return fmt(median)
    return f"{fmt(median)} ({fmt(values[0])} to {fmt(values[-1])})"


lines = []
servers = load("servers.jsonl")
if servers:
    runs = [s for s in servers if s["kind"] == "throughput"]
    ratios = {}
    for tool in ["tpk-load", "wrk"]:
        by_tool = [s for s in runs if s.get("tool", "tpk-load") == tool]
        if not by_tool:
            continue
        lines += [f"### Mock server and Go peer, `/consume-here`, load from {tool}", "",
                  "| concurrency | server | req/s | p50 µs | p99 µs | max µs |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for c in sorted({s["result"]["concurrency"] for s in by_tool}):
            medians = {}
            for server in ["mock", "go"]:
                rs = [s["result"] for s in by_tool if s["server"] == server and s["result"]["concurrency"] == c]
                if not rs:
                    continue
                medians[server] = statistics.median(r["rps"] for r in rs)
                errors = sum(r.get("errors", 0) for r in rs)
                label = f"{server} ({errors} errors)" if errors else server
                lines.append(
                    f"| {c} | {label} | {spread([r['rps'] for r in rs], lambda v: f'{v:,.0f}')} "
                    f"| {spread([r['latency_us']['p50'] for r in rs], lambda v: f'{v:.0f}')} "
                    f"| {spread([r['latency_us']['p99'] for r in rs], lambda v: f'{v:.0f}')} "
                    f"| {spread([r['latency_us']['max'] for r in rs], lambda v: f'{v:.0f}')} |")
            if "mock" in medians and "go" in medians:
                ratios[(tool, c)] = medians["mock"] / medians["go"]
        lines.append("")
    lines += ["| load from | concurrency | mock / go throughput (medians) |", "| --- | --- | --- |"]
    lines += [f"| {tool} | {c} | {r:.2f}x |" for (tool, c), r in ratios.items()]

    def cpu_us(s):
        return s["cpu_ticks"] / s["clk_tck"] * 1e6 / s["result"]["requests"]

    counted = [s for s in runs if "cpu_ticks" in s and s["result"]["requests"]]
    if counted:
        lines += ["", "### Each server's own CPU time per request (user and system), load from wrk", "",
                  "| concurrency | mock µs | go µs | go / mock |", "| --- | --- | --- | --- |"]
        for c in sorted({s["result"]["concurrency"] for s in counted}):
            per = {server: [cpu_us(s) for s in counted
                            if s["server"] == server and s["result"]["concurrency"] == c]
                   for server in ["mock", "go"]}
            if per["mock"] and per["go"]:
                lead = statistics.median(per["go"]) / statistics.median(per["mock"])
                lines.append(f"| {c} | {spread(per['mock'], lambda v: f'{v:.1f}')} "
                             f"| {spread(per['go'], lambda v: f'{v:.1f}')} | {lead:.2f}x |")
    for s in servers:
        if s["kind"] == "idle_rss":
            lines += ["", f"- idle RSS: {s['kib'] / 1024:.1f} MiB"]
        if s["kind"] == "million":
            r = s["result"]
            lines.append(f"- after {r['requests']:,} requests at concurrency 64, journal on: RSS "
                         f"{r['rss_kib']['before'] / 1024:.1f} MiB before, {r['rss_kib']['after'] / 1024:.1f} MiB after "
                         f"({r['rps']:,.0f} req/s, {r['errors']} errors)")
        if s["kind"] == "startup":
            t = s["result"]["first_healthz_ms"]
            lines.append(f"- first `200` on `/healthz` after start, {s['result']['runs']} runs: "
                         f"median {t['median']:.1f} ms ({t['min']:.1f} to {t['max']:.1f})")
        if s["kind"] == "image":
            lines.append(f"- image `telepresence-mock-server:latest`: {s['bytes'] / 1e6:.1f} MB")

sdk = load("sdk.jsonl")
if sdk:
    ids = sorted({s["id"] for s in sdk})
    lines += ["", "### SDK (criterion medians per round; median of rounds, spread)", "",
              "| benchmark | time per iteration | throughput |", "| --- | --- | --- |"]
    medians = {}
    for i in ids:
        rs = [s for s in sdk if s["id"] == i]
        times = [s["median_ns"] for s in rs]
        medians[i] = statistics.median(times)

        def show_time(ns):
            return f"{ns:.1f} ns" if ns < 1000 else (f"{ns / 1000:.1f} µs" if ns < 1e6 else f"{ns / 1e6:.2f} ms")

        elements = rs[0]["elements"] or 1
        rate = spread([elements / (t / 1e9) for t in times], lambda v: f"{v:,.0f}/s")
        lines.append(f"| `{i}` | {spread(times, show_time)} | {rate} |")

    def per_second(i, elements=1):
        return elements / (medians[i] / 1e9) if i in medians else None

    sequential = per_second("decision/loopback_sequential")
    depth32 = per_second("stream/pipelined/32", 256)
    sdk_one = per_second("compare/sdk")
    cpq_one = per_second("compare/connection_per_query")
    plain_one = per_second("compare/plain_reqwest")
    sdk32 = per_second("compare_32_in_flight/sdk", 32)
    cpq32 = per_second("compare_32_in_flight/connection_per_query", 32)
    plain32 = per_second("compare_32_in_flight/plain_reqwest", 32)
    lines += ["", "| ratio | value |", "| --- | --- |"]
    if sequential and depth32:
        lines.append(f"| stream adapter at depth 32 / sequential decisions | {depth32 / sequential:.2f}x |")
    if sdk_one and cpq_one:
        lines.append(f"| SDK / connection per query, one at a time | {sdk_one / cpq_one:.2f}x |")
    if sdk32 and cpq32:
        lines.append(f"| SDK / connection per query, 32 in flight | {sdk32 / cpq32:.2f}x |")
    if sdk_one and plain_one:
        lines.append(f"| SDK / plain reqwest, one at a time | {sdk_one / plain_one:.2f}x |")
    if sdk32 and plain32:
        lines.append(f"| SDK / plain reqwest, 32 in flight | {sdk32 / plain32:.2f}x |")

breakdown = load("breakdown.jsonl")
if breakdown:
    rs = [b["result"] for b in breakdown]
    first = rs[0]
    lines += ["", f"### Where an uncached decision's time goes ({first['queries']:,} queries of "
              f"{first['query_bytes']} bytes, answers of {first['answer_bytes']} bytes; median of rounds, spread)", "",
              "| layer | p50 µs | p99 µs | p50 / loopback p50 |", "| --- | --- | --- | --- |"]
    for i, layer in enumerate(first["layers"]):
        ls = [r["layers"][i] for r in rs]
        lines.append(f"| {layer['layer']} | {spread([l['p50_us'] for l in ls], lambda v: f'{v:.0f}')} "
                     f"| {spread([l['p99_us'] for l in ls], lambda v: f'{v:.0f}')} "
                     f"| {spread([l['of_loopback'] for l in ls], lambda v: f'{v:.2f}')} |")
    lines.append(f"| SDK decisions, {first['depth']} in flight (time per decision) "
                 f"| {spread([r['in_flight_us_per_decision'] for r in rs], lambda v: f'{v:.1f}')} | "
                 f"| {spread([r['in_flight_of_loopback'] for r in rs], lambda v: f'{v:.2f}')} |")

kafka = load("kafka.jsonl")
if kafka:
    rs = [k["result"] for k in kafka]
    lines += ["", "### Consumer throughput through the in-process Kafka", "",
              "| consumer | msg/s | of the baseline |", "| --- | --- | --- |",
              f"| without the SDK (baseline) | {spread([r['baseline_msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} | 1 |"]
    if rs[0].get("headers_msgs_per_s"):
        lines.append(f"| reading every header, nothing else (any header filter's ceiling) | {spread([r['headers_msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
                     f"| {spread([r['headers_ratio'] for r in rs], lambda v: f'{v:.2f}')} |")
    lines += [
              f"| workstation, SDK, depth {rs[0]['depth']} | {spread([r['sdk_msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
              f"| {spread([r['sdk_ratio'] for r in rs], lambda v: f'{v:.3f}')} |"]
    if rs[0].get("decisions_msgs_per_s"):
        lines.append(f"| decisions from the cache in a plain loop, no stream adapter, no offsets | {spread([r['decisions_msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
                     f"| {spread([r['decisions_ratio'] for r in rs], lambda v: f'{v:.2f}')} |")
    if rs[0].get("cached_msgs_per_s"):
        lines.append(f"| workstation, SDK with the decision cache | {spread([r['cached_msgs_per_s'] for r in rs], lambda v: f'{v:,.0f}')} "
                     f"| {spread([r['cached_ratio'] for r in rs], lambda v: f'{v:.2f}')} |")

counted = load("instructions.jsonl")
if counted:
    drain = "tpk_load::kafka::drain::{{closure}}"
    consumers = {}
    for r in counted:
        consumers.setdefault(r["consumer"], []).append(r)

    def per_message(consumer, function=drain):
        return [r["calls"][function]["instructions"] / r["messages"] for r in consumers[consumer]]

    def per_call(consumer, function):
        return [r["calls"][function]["instructions_per_call"] for r in consumers[consumer]]

    def minus(a, b):
        return [x - y for x, y in zip(a, b)]

    def count(v):
        return f"{v:,.0f}"

    names = {
        "baseline": "without the SDK (baseline)",
        "headers": "reading every header, nothing else",
        "decisions": "decisions from the cache in a plain loop",
        "cached": "workstation, SDK with the decision cache",
    }
    base = per_message("baseline")
    lines += ["", "### Instructions per message in the consumer's task (callgrind; median of rounds, spread)", "",
              "| consumer | instructions per message | of the baseline |", "| --- | --- | --- |"]
    for consumer, name in names.items():
        if consumer in consumers:
            ratios = [x / y for x, y in zip(per_message(consumer), base)]
            lines.append(f"| {name} | {spread(per_message(consumer), count)} "
                         f"| {spread(ratios, lambda v: f'{v:.2f}')} |")
    if "headers" in consumers and "cached" in consumers:
        freeing = minus(per_message("headers", "rd_kafka_headers_destroy"),
                        per_message("baseline", "rd_kafka_headers_destroy"))
        decision = minus(per_call("cached", "telepresence_kafka::client::Client::should_consume"),
                         per_call("cached", "rd_kafka_message_headers"))
        lines += ["", "| where | instructions |", "| --- | --- |",
                  f"| librdkafka polling a message (`rd_kafka_queue_poll`, per call, baseline) | {spread(per_call('baseline', 'rd_kafka_queue_poll'), count)} |",
                  f"| librdkafka parsing a message's headers on the first read (`rd_kafka_message_headers`, per call, header reader) | {spread(per_call('headers', 'rd_kafka_message_headers'), count)} |",
                  f"| librdkafka freeing the parsed headers (`rd_kafka_headers_destroy`, header reader minus baseline, per message) | {spread(freeing, count)} |",
                  f"| a decision from the cache, the header parse left out (`should_consume` minus `rd_kafka_message_headers`, per call) | {spread(decision, count)} |",
                  f"| the SDK in all: workstation minus header reader, per message | {spread(minus(per_message('cached'), per_message('headers')), count)} |"]

text = "\n".join(lines) + "\n"
(results / "summary.md").write_text(text)
print(text)
