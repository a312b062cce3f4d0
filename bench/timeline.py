#!/usr/bin/env python3
"""When the slow answers of a run came, and what the server was doing then.

Reads a server log written with
  RUST_LOG=warn,tower_http::trace::on_response=debug,idp::checkpoint=debug
(one "finished processing request" event per answer, one "log checkpoint pass" event per SQLite checkpoint
pass; `bench/ab.sh` writes it with TIMELINE=1) and prints the server-side latency percentiles, then each
window of WINDOW_MS in which MIN_GROUP answers or more took SLOW_MS or longer, with the checkpoint passes that
ran during it. It also counts the answers that were in progress while a pass ran, and how many of those were
above the p99, and gives the server-side p50 and p99 of the answers that met no pass. The server's latency
starts when it has read the request: time spent waiting in the socket while the server is held up is in the
load generator's figures only.

  bench/timeline.py SERVER_LOG [SLOW_MS=12] [WINDOW_MS=100] [MIN_GROUP=5]
"""
import re
import sys
from datetime import datetime

ANSWER = re.compile(r"^(\S+) +DEBUG .*finished processing request latency=(\d+) (ms|μs|us)")
PASS = re.compile(r"^(\S+) +DEBUG .*log checkpoint pass pass=\"([^\"]+)\" log=(\d+) copied=(\d+) ms=([\d.]+)")


def seconds(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    given = [float(a) for a in sys.argv[2:5]]
    slow_ms, window_ms, min_group = given + [12.0, 100.0, 5.0][len(given):]
    answers, passes = [], []
    with open(sys.argv[1], encoding="utf-8") as log:
        for line in log:
            if m := ANSWER.match(line):
                value = int(m.group(2))
                answers.append((seconds(m.group(1)), value if m.group(3) == "ms" else value / 1000))
            elif m := PASS.match(line):
                end, took = seconds(m.group(1)), float(m.group(5))
                passes.append((end - took / 1000, end, m.group(2), int(m.group(3)), took))
    if not answers:
        sys.exit(f"{sys.argv[1]}: no answers logged (RUST_LOG must enable tower_http::trace::on_response=debug)")
    start = min(t for t, _ in answers)
    ordered = sorted(ms for _, ms in answers)

    def pct(p, values=ordered):  # values sorted
        return values[min(len(values) - 1, int(len(values) * p))]

    slow = [(t, ms) for t, ms in answers if ms >= slow_ms]
    print(f"{len(answers)} answers; server-side p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f}, p99.9 {pct(0.999):.2f}; "
          f"{len(slow)} ({100 * len(slow) / len(answers):.2f}%) took {slow_ms:g} ms or more; "
          f"{len(passes)} checkpoint passes")
    # The answers that were in progress while a pass ran, against the others: how much of the tail the passes make.
    p99 = pct(0.99)
    during, rest = [], []
    for t, ms in answers:
        met = any(lo < t and t - ms / 1000 < hi for lo, hi, *_ in passes)
        (during if met else rest).append(ms)
    if during and rest:
        rest.sort()
        print(f"in progress during a pass: {len(during)} answers ({100 * len(during) / len(answers):.1f}%), "
              f"{sum(ms > p99 for ms in during)} of the {sum(ms > p99 for ms in ordered)} above the p99; "
              f"the others: p50 {pct(0.5, rest):.2f} ms, p99 {pct(0.99, rest):.2f}")
    windows = {}
    for t, ms in slow:
        windows.setdefault(int((t - start) * 1000 // window_ms), []).append(ms)
    groups = on_pass = 0
    for k in sorted(windows):
        if len(windows[k]) < min_group:
            continue
        groups += 1
        lo, hi = start + k * window_ms / 1000, start + (k + 1) * window_ms / 1000
        # A slow answer ends after what held it up: passes that ran in the window or just before it.
        during = [p for p in passes if p[0] < hi and p[1] > lo - 0.05]
        on_pass += bool(during)
        what = "; ".join(f"{p[2]} {p[4]:.0f} ms ({p[3]} frames)" for p in during) or "no checkpoint pass"
        print(f"  {k * window_ms / 1000:7.1f} s  {len(windows[k]):4d} slow, max {max(windows[k]):6.1f} ms  {what}")
    print(f"{groups} groups of {min_group:g} or more slow answers in {window_ms:g} ms; {on_pass} during a checkpoint pass")


if __name__ == "__main__":
    main()
