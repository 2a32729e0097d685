"""Prints, as JSON lines, the median time of every criterion benchmark of the
last `cargo bench` run (target/criterion/**/new/estimates.json)."""
import json
import pathlib
import sys

round_number = int(sys.argv[1]) if len(sys.argv) > 1 else 1
root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
for estimates in sorted(root.glob("**/new/estimates.json")):
    benchmark = json.loads((estimates.parent / "benchmark.json").read_text())
    median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
    elements = None
    throughput = benchmark.get("throughput") or {}
    if "Elements" in throughput:
        elements = throughput["Elements"]
    print(json.dumps({
        "round": round_number,
        "id": benchmark["full_id"],
        "median_ns": median_ns,
        "elements": elements,
    }))
