"""Summarises a bench/run.sh run (wrk reports + server CPU ticks) as markdown tables.

usage: summarise.py RESULTS_DIR PEER_LEVEL
"""
import json
import os
import statistics
import sys
from collections import defaultdict

out, peer_level = sys.argv[1], sys.argv[2]
ticks_per_second = os.sysconf("SC_CLK_TCK")


def jsonl(name):
    """The JSON objects among the lines of RESULTS_DIR/name (none when it is missing)."""
    path = f"{out}/{name}"
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


limits = {row["alg"]: row["per_second"] for row in jsonl("limits.jsonl")}
# The limit measured just before each of our runs that counts against one (token-<alg>: signatures; login:
# argon2 checks): (scenario, level, backend, run) → its row (`alg`, `per_second`).
run_limits = {(row["scenario"], row["level"], row["backend"], row["run"]): row for row in jsonl("run-limits.jsonl")}

# (scenario, level, backend, server) → runs
runs = defaultdict(list)
for line in open(f"{out}/runs.tsv"):
    scenario, level, backend, server, run, ticks = line.rstrip("\n").split("\t")
    with open(f"{out}/{scenario}-{level}-{backend}-{server}-{run}.json") as f:
        wrk = json.load(f)
    failed = wrk["non_2xx"] + wrk["socket_errors"]
    ok = max(wrk["requests"] - failed, 0)
    rps = ok / (wrk["duration_us"] / 1e6)
    limit = run_limits.get((scenario, level, backend, run), {}).get("per_second") if server == "ours" else None
    runs[(scenario, level, backend, server)].append({
        "rps": rps,
        # The share of the limit measured just before this run, for the runs that count against one.
        "share": rps / limit if limit else None,
        "p50": wrk["p50_us"] / 1000,
        "p99": wrk["p99_us"] / 1000,
        "cpu_us": int(ticks) / ticks_per_second * 1e6 / max(ok, 1),
        "errors": failed,
    })


def mean(rs, key):
    return statistics.mean(r[key] for r in rs)


def level_name(level):
    if level == "-":
        return ""
    n = int(level)
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k" if n >= 1000 else str(n)


# Side by side: every scenario the peer ran too, plus ours alone where it has no counterpart.
print("## Side by side (server on one core)")
print()
print("| scenario | ours req/s | peer req/s | ours/peer | ours p50 / p99 ms | peer p50 / p99 ms "
      "| ours CPU µs/req | peer CPU µs/req | ours % of the per-core limit |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
order = ["token-ES256", "token-EdDSA", "token-RS256", "discovery", "jwks",
         "userinfo", "introspect-access", "introspect-refresh", "refresh", "code", "login"]
keys = sorted({(s, l, b) for s, l, b, _ in runs if l in ("-", peer_level) and b == "sqlite"},
              key=lambda k: order.index(k[0]) if k[0] in order else len(order))
for scenario, level, backend in keys:
    ours, peer = runs.get((scenario, level, backend, "ours")), runs.get((scenario, level, backend, "peer"))
    label = scenario + (f" ({level_name(level)} users)" if level != "-" else "")
    cells = [label,
             f"{mean(ours, 'rps'):,.0f}" if ours else "—",
             f"{mean(peer, 'rps'):,.0f}" if peer else "—",
             f"{mean(ours, 'rps') / mean(peer, 'rps'):.1f}x" if ours and peer else "—",
             f"{mean(ours, 'p50'):.2f} / {mean(ours, 'p99'):.2f}" if ours else "—",
             f"{mean(peer, 'p50'):.2f} / {mean(peer, 'p99'):.2f}" if peer else "—",
             f"{mean(ours, 'cpu_us'):.0f}" if ours else "—",
             f"{mean(peer, 'cpu_us'):.0f}" if peer else "—"]
    alg = scenario.split("-", 1)[1] if scenario.startswith("token-") else "argon2id" if scenario == "login" else None
    if ours and all(r["share"] for r in ours):
        cells.append(f"{100 * mean(ours, 'share'):.0f}%")
    else:
        cells.append(f"{100 * mean(ours, 'rps') / limits[alg]:.0f}%" if ours and alg in limits else "—")
    errors = sum(r["errors"] for r in (ours or []) + (peer or []))
    if errors:
        cells[0] += f" ({errors} failed)"
    print("| " + " | ".join(cells) + " |")
floors = [(server, runs.get(("jwks", "-", "sqlite", server))) for server in ("ours", "floor-axum", "floor-hyper")]
peer = runs.get(("jwks", "-", "sqlite", "peer"))
if peer and all(rs for _, rs in floors):
    print()
    print("The JWKS from the floor servers (idp/examples/http_floor.rs: its bytes and headers, nothing else), "
          "and the ratio each would score against the peer:")
    print()
    print("| server | req/s | p50 / p99 ms | CPU µs/req | /peer |")
    print("|---|---:|---:|---:|---:|")
    for server, rs in floors + [("peer", peer)]:
        errors = sum(r["errors"] for r in rs)
        print(f"| {server}{f' ({errors} failed)' if errors else ''} | {mean(rs, 'rps'):,.0f} "
              f"| {mean(rs, 'p50'):.2f} / {mean(rs, 'p99'):.2f} "
              f"| {mean(rs, 'cpu_us'):.1f} | {mean(rs, 'rps') / mean(peer, 'rps'):.1f}x |")
if limits:
    print()
    print("Per-core limits (signatures with keys parsed once; argon2id sign-in checks), at the start of the run: "
          + ", ".join(f"{alg} {n:,.0f}/s" for alg, n in limits.items()))
    again = defaultdict(list)
    for row in run_limits.values():
        again[row["alg"]].append(row["per_second"])
    if again:
        print()
        print("Measured again just before each of our runs that counts against it, and compared with that: "
              + ", ".join(f"{name} {min(ns):,.0f}–{max(ns):,.0f}/s" for name, ns in again.items()) + ".")

# Resource-server validation: µs per token, per algorithm and case.
cases = defaultdict(dict)
for row in jsonl("validate.jsonl"):
    cases[row["alg"]][row["case"]] = row
if cases:
    names = sorted({c for alg in cases.values() for c in alg})
    print()
    print("## Resource-server validation (media-api validator, one core): µs per token")
    print()
    print("| alg | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for alg, row in cases.items():
        print(f"| {alg} | " + " | ".join(f"{row[c]['us_per_op']:.2f}" if c in row else "—" for c in names) + " |")

# Growth: ours, per backend, per database size.
levels = sorted({l for _, l, _, _ in runs if l != "-"}, key=int)
if levels:
    print()
    print("## Growth (ours): req/s, p50 / p99 ms (login: and the share of the argon2 limit of its moment)")
    print()
    print("| scenario | backend | " + " | ".join(f"{level_name(l)} users" for l in levels) + " |")
    print("|---|---|" + "---:|" * len(levels))
    for backend in ("sqlite", "postgres"):
        for scenario in order:
            cells = []
            for level in levels:
                ours = runs.get((scenario, level, backend, "ours"))
                if not ours:
                    cells.append("—")
                    continue
                errors = sum(r["errors"] for r in ours)
                share = f" · {100 * mean(ours, 'share'):.0f}%" if all(r["share"] for r in ours) else ""
                cells.append(f"{mean(ours, 'rps'):,.0f} · {mean(ours, 'p50'):.2f} / {mean(ours, 'p99'):.2f}{share}"
                             + (f" ({errors} failed)" if errors else ""))
            if any(c != "—" for c in cells):
                print(f"| {scenario} | {backend} | " + " | ".join(cells) + " |")
