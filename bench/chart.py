"""Draws docs/img/pipelining.svg: decisions per second against the stream
adapter's depth, from bench/results/sdk.jsonl (median of the rounds, with
the spread as a whisker)."""
import json
import pathlib
import statistics

here = pathlib.Path(__file__).resolve().parent
rows = [json.loads(l) for l in (here / "results" / "sdk.jsonl").read_text().splitlines() if l.strip()]
depths = sorted({int(r["id"].rsplit("/", 1)[1]) for r in rows if r["id"].startswith("stream/pipelined/")})
points = []
for depth in depths:
    rates = [r["elements"] / (r["median_ns"] / 1e9) for r in rows if r["id"] == f"stream/pipelined/{depth}"]
    points.append((depth, statistics.median(rates), min(rates), max(rates)))
sequential = [1 / (r["median_ns"] / 1e9) for r in rows if r["id"] == "decision/loopback_sequential"]

width, height, left, bottom, top = 560, 320, 70, 50, 30
top_rate = max(p[3] for p in points) * 1.15
scale = (height - bottom - top) / top_rate
bar = (width - left - 20) / len(points)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">Decisions per second through the stream adapter</text>']
for i in range(6):
    value = top_rate * i / 5
    y = height - bottom - value * scale
    svg.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value / 1000:.0f}k</text>')
for i, (depth, median, low, high) in enumerate(points):
    x = left + i * bar + bar * 0.2
    w = bar * 0.6
    y = height - bottom - median * scale
    svg.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{median * scale:.1f}" fill="#4a7bd0"/>')
    cx = x + w / 2
    svg.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{height - bottom - high * scale:.1f}" y2="{height - bottom - low * scale:.1f}" stroke="black"/>')
    svg.append(f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle">{median / 1000:.1f}k</text>')
    svg.append(f'<text x="{cx:.1f}" y="{height - bottom + 16}" text-anchor="middle">{depth}</text>')
if sequential:
    y = height - bottom - statistics.median(sequential) * scale
    svg.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d04a4a" stroke-dasharray="5,4"/>')
    svg.append(f'<text x="{width - 22}" y="{y - 5:.1f}" text-anchor="end" fill="#d04a4a">sequential, no adapter</text>')
svg.append(f'<text x="{(left + width - 20) / 2}" y="{height - 12}" text-anchor="middle">decisions in flight (depth)</text>')
svg.append('</svg>')
out = here.parent / "docs" / "img" / "pipelining.svg"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("\n".join(svg) + "\n")
print(f"wrote {out}")
