"""Summarises a bench/run.sh run: oha JSON per run + server CPU ticks → a markdown table."""
import json
import os
import statistics
import sys
from collections import defaultdict

out = sys.argv[1]
ticks_per_second = os.sysconf("SC_CLK_TCK")
signing = {}
if os.path.exists(f"{out}/signing.jsonl"):
    for line in open(f"{out}/signing.jsonl"):
        line = line.strip()
        if line.startswith("{"):
            row = json.loads(line)
            signing[row["alg"]] = row["per_second"]

runs = defaultdict(list)
for line in open(f"{out}/runs.tsv"):
    scenario, server, run, ticks = line.split("\t")
    with open(f"{out}/{scenario}-{server}-{run}.json") as f:
        oha = json.load(f)
    summary = oha["summary"]
    codes = oha.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    total = sum(codes.values()) or 1
    latency = oha.get("latencyPercentiles", {})
    runs[(scenario, server)].append({
        "rps": summary["requestsPerSec"] * ok / total,
        "p50": (latency.get("p50") or 0) * 1000,
        "p99": (latency.get("p99") or 0) * 1000,
        "cpu_us": int(ticks) / ticks_per_second * 1e6 / max(ok, 1),
        "errors": total - ok,
    })


def mean(server_runs, key):
    return statistics.mean(r[key] for r in server_runs)


scenarios = sorted({s for s, _ in runs}, key=lambda s: (not s.startswith("token"), s))
print("| scenario | ours req/s | peer req/s | ours/peer | ours p50 / p99 ms | peer p50 / p99 ms | ours CPU µs/req | peer CPU µs/req | ours % of signing limit |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for scenario in scenarios:
    ours, peer = runs.get((scenario, "ours")), runs.get((scenario, "peer"))
    cells = [scenario]
    cells.append(f"{mean(ours, 'rps'):,.0f}" if ours else "—")
    cells.append(f"{mean(peer, 'rps'):,.0f}" if peer else "—")
    cells.append(f"{mean(ours, 'rps') / mean(peer, 'rps'):.1f}x" if ours and peer else "—")
    cells.append(f"{mean(ours, 'p50'):.2f} / {mean(ours, 'p99'):.2f}" if ours else "—")
    cells.append(f"{mean(peer, 'p50'):.2f} / {mean(peer, 'p99'):.2f}" if peer else "—")
    cells.append(f"{mean(ours, 'cpu_us'):.0f}" if ours else "—")
    cells.append(f"{mean(peer, 'cpu_us'):.0f}" if peer else "—")
    alg = scenario.split("-", 1)[1] if scenario.startswith("token-") else None
    cells.append(f"{100 * mean(ours, 'rps') / signing[alg]:.0f}%" if ours and alg in signing else "—")
    errors = sum(r["errors"] for r in (ours or []) + (peer or []))
    if errors:
        cells[0] += f" ({errors} non-2xx)"
    print("| " + " | ".join(cells) + " |")
if signing:
    print()
    print("Signing limit (one core, keys parsed once): " + ", ".join(f"{alg} {n:,.0f}/s" for alg, n in signing.items()))
