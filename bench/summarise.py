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


# The targets of the performance issue (#5), each with this run's figure, its figure by pair where it has one,
# and whether it is met. Ratios and shares as in the tables below: the mean of ours over the mean of the peer's,
# and the mean of each run's share of the limit measured just before it.
def pairs(scenario):
    """Our runs of a side-by-side scenario with the peer's run of the same number: [(ours, peer)]."""
    ours, peer = runs.get((scenario, "-", "sqlite", "ours")), runs.get((scenario, "-", "sqlite", "peer"))
    return list(zip(ours, peer)) if ours and peer else []


def ratio(both):
    """Ours over the peer's, of the mean requests a second of the pairs `both`."""
    return statistics.mean(o["rps"] for o, _ in both) / statistics.mean(p["rps"] for _, p in both)


targets = []
for alg in ("ES256", "EdDSA"):
    both = pairs(f"token-{alg}")
    if both and all(o["share"] for o, _ in both):
        share = statistics.mean(o["share"] for o, _ in both)
        by_pair = ", ".join(f"{o['rps'] / p['rps']:.2f}x at {100 * o['share']:.1f}%" for o, p in both)
        targets.append((f"client credentials {alg} ≥ 8x the peer and ≥ 40% of the signing limit",
                        f"{ratio(both):.2f}x at {100 * share:.1f}%", by_pair, ratio(both) >= 8 and share >= 0.40))
rs256 = runs.get(("token-RS256", "-", "sqlite", "ours"))
if rs256 and all(r["share"] for r in rs256):
    share = mean(rs256, "share")
    targets.append(("client credentials RS256 ≥ 85% of the signing limit", f"{100 * share:.1f}%",
                    ", ".join(f"{100 * r['share']:.1f}%" for r in rs256), share >= 0.85))
for doc in ("discovery", "jwks"):
    both = pairs(doc)
    if both:
        axum = runs.get((doc, "-", "sqlite", "floor-axum"))
        floor = f" (axum's floor {ratio(list(zip(axum, (p for _, p in both)))):.1f}x)" if axum else ""
        targets.append((f"{doc} ≥ 10x the peer", f"{ratio(both):.2f}x{floor}",
                        ", ".join(f"{o['rps'] / p['rps']:.2f}x" for o, p in both), ratio(both) >= 10))
# Every token grant but RS256: the p99 of each size's mean of runs, the worst of them.
for scenario in ("token-ES256", "token-EdDSA", "refresh", "code"):
    sizes = {(l, b): rs for (s, l, b, server), rs in runs.items() if s == scenario and server == "ours"}
    if sizes:
        worst = max(mean(rs, "p99") for rs in sizes.values())
        where = "" if scenario.startswith("token-") else " (the worst size and backend)"
        targets.append((f"p99 < 5 ms, {scenario}{where}",
                        f"{worst:.2f} ms", ", ".join(f"{r['p99']:.2f}" for rs in sizes.values() for r in rs),
                        worst < 5))
logins = [rs for (s, _, _, server), rs in runs.items() if s == "login" and server == "ours"]
if logins and all(r["share"] for rs in logins for r in rs):
    worst = min(mean(rs, "share") for rs in logins)
    targets.append(("login within 90% of the argon2 limit (the worst size and backend)", f"{100 * worst:.1f}%",
                    ", ".join(f"{100 * r['share']:.0f}%" for rs in logins for r in rs), worst >= 0.90))
validation = defaultdict(dict)  # alg → case → µs per token
for row in jsonl("validate.jsonl"):
    validation[row["alg"]][row["case"]] = row["us_per_op"]
if validation and all({"cached", "first_seen", "signature_only"} <= set(c) for c in validation.values()):
    cached = max(c["cached"] for c in validation.values())
    above = max(c["first_seen"] - c["signature_only"] for c in validation.values())
    targets.append(("media-api validator: a cached token < 5 µs; a first-seen one ≤ the signature + 10 µs",
                    f"{cached:.2f} µs; +{above:.2f} µs", "", cached < 5 and above <= 10))
if targets:
    print("## The performance issue's targets in this run")
    print()
    print("| target | this run | runs | |")
    print("|---|---|---|---|")
    for name, figure, by_run, met in targets:
        print(f"| {name} | {figure} | {by_run} | {'met' if met else '**missed**'} |")
    print()
    print("Not measured by this script: a media-api request carrying a token over HTTP.")
    print()

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
