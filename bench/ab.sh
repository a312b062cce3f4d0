#!/usr/bin/env bash
# A/B comparison of two builds of our issuer on one user scenario: what a change's commit message reports.
#
# Seeds one database (idp/examples/bench_seed.rs), then runs A B A B… on fresh copies of it: each run starts
# its server on the copy, pinned to SERVER_CPU, and loads it with wrk, pinned to LOAD_CPU, for DURATION.
# It prints, per run, req/s, p50, p99, p99.9 and the server's CPU µs per request, and the ratios B/A.
# The machine's speed drifts by up to ~20% over minutes: trust the ratio within pairs, not absolute figures.
#
#   bench/ab.sh OLD_IDP NEW_IDP                   # refresh grant, 100k users, SQLite, 2 pairs
#   SCENARIO=userinfo BACKEND=postgres PAIRS=3 bench/ab.sh OLD_IDP NEW_IDP
#   TIMELINE=1 PAIRS=1 bench/ab.sh IDP IDP       # and when each run's slow answers came
#   DUEL=1 PAIRS=4 SCENARIO=token-EdDSA bench/ab.sh OLD_IDP NEW_IDP   # both at once: CPU cost to about 2%
#   DUEL=1 PAIRS=4 SCENARIO=jwks bench/ab.sh IDP floor-axum           # ours against the floor under a JWKS
#
# SCENARIO: refresh | code | introspect-refresh | introspect-access | userinfo (code: the authorization-code
# grant, CODES codes minted into each run's copy just before it, as they live 60 s), or one that reads no user:
# token-<alg> (client credentials, an access token signed with <alg>: ES256, EdDSA or RS256) | discovery | jwks
# (USERS defaults to 1 for those). The seed is written by the bench_seed of this checkout (SEED), so both builds
# must share its schema. Loopback only, bounded in time.
# COLD=1 (SQLite) drops each run's copy from the kernel's page cache before its server starts, as a server that
# has run for a while finds its file on a machine that evicts file pages (see docs/performance.md); a fresh copy
# is otherwise wholly in the cache, having just been written.
# TIMELINE=1 logs every answer's server-side latency and every checkpoint pass, and prints after each run when
# the slow answers came (bench/timeline.py); the logging costs a few percent.
# DUEL=1 runs A and B at the same time, each pair, both on SERVER_CPU and each loaded by a wrk of its own with
# half the connections: the machine's drift, which moves single runs by up to 20% here, then meets both alike,
# and the scheduler gives each half the core, so B/A of the req/s is the inverse of B/A of the CPU per request,
# to about 2% (docs/performance-changes.md). Two servers on one core switch between each other and batch less,
# so the absolute figures and the latencies are not those of a server alone: use it for what a change costs, not
# for the tail.
# B may be `floor-axum` or `floor-hyper` (with DUEL=1 and SCENARIO=jwks): idp/examples/http_floor.rs in that
# mode, answering with the JWKS bytes and headers of A's server, which it meets at the same moments: what A's
# JWKS request costs above the floor of its stack, to the duel's 2%, where a full run's floor servers, measured
# after ours, meet the machine's drift (docs/performance-changes.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

[ $# -eq 2 ] || { sed -n '2,/^set /{/^set /!p}' "$0"; exit 2; }
A=$(realpath "$1")
SCENARIO=${SCENARIO:-refresh}
FLOOR=
case $2 in
  floor-axum | floor-hyper)
    [ -n "${DUEL:-}" ] && [ "$SCENARIO" = jwks ] && [ -z "${TIMELINE:-}" ] ||
      { echo "B=$2 needs DUEL=1 and SCENARIO=jwks, without TIMELINE (the floor logs no answers)"; exit 2; }
    FLOOR=${2#floor-} B=${CARGO_TARGET_DIR:-$HOME/.cache/idp-bench-target}/release/examples/http_floor
    [ -x "$B" ] || { echo "bench/ab.sh needs $B (cargo build --release -p idp --example http_floor)"; exit 1; } ;;
  *) B=$(realpath "$2") ;;
esac
ALG=ES256
case $SCENARIO in
  refresh | code | introspect-refresh | introspect-access | userinfo) ;;
  # No user is read: one is seeded. The seed's client signs ID tokens with ID_TOKEN_ALG, which must have a key:
  # RS256 always has one.
  token-ES256 | token-EdDSA | token-RS256 | discovery | jwks)
    USERS=${USERS:-1} ID_TOKEN_ALG=${ID_TOKEN_ALG:-RS256}
    case $SCENARIO in token-*) ALG=${SCENARIO#token-} ;; esac ;;
  *) echo "unknown SCENARIO $SCENARIO"; exit 2 ;;
esac
USERS=${USERS:-100000}
SAMPLE=${SAMPLE:-9000}
PAIRS=${PAIRS:-2}
DURATION=${DURATION:-12s}
CONNECTIONS=${CONNECTIONS:-32}
BACKEND=${BACKEND:-sqlite}
ID_TOKEN_ALG=${ID_TOKEN_ALG:-ES256}
PORT=${PORT:-18090}
SEED=${SEED:-${CARGO_TARGET_DIR:-$HOME/.cache/idp-bench-target}/release/examples/bench_seed}

for tool in taskset wrk curl python3 "$SEED"; do
  command -v "$tool" >/dev/null || { echo "bench/ab.sh needs $tool"; exit 1; }
done
work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null; done
  if [ "$BACKEND" = postgres ]; then
    psql "$PG_URL/postgres" -qc 'DROP DATABASE IF EXISTS idp_ab_a' -c 'DROP DATABASE IF EXISTS idp_ab_b' \
      -c 'DROP DATABASE IF EXISTS idp_ab_seed' || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

seed_db() {
  if [ "$BACKEND" = sqlite ]; then
    echo "sqlite://$work/seed.db"
  else
    pg_db idp_ab_seed
  fi
}
fresh_db() {  # NAME (a or b): a copy of the seeded database for one run
  if [ "$BACKEND" = sqlite ]; then
    rm -f "$work/run-$1.db"*
    cp "$work/seed.db" "$work/run-$1.db"
    if [ -f "$work/seed.db-wal" ]; then cp "$work/seed.db-wal" "$work/run-$1.db-wal"; fi
    if [ -n "${COLD:-}" ]; then drop_from_cache "$work/run-$1.db"*; fi
    echo "sqlite://$work/run-$1.db"
  else
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS idp_ab_$1" -c "CREATE DATABASE idp_ab_$1 TEMPLATE idp_ab_seed"
    pg_db "idp_ab_$1"
  fi
}
# drop_from_cache FILE…: written to disk, then out of the kernel's page cache.
drop_from_cache() {
  python3 -c 'import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)' "$@"
}
idp_env() { ours_env "${2:-$PORT}" "$ALG" "$work" "$1"; }  # database-url [port]

echo "== seeding $USERS users on $BACKEND"
if [ "$BACKEND" = postgres ]; then
  psql "$PG_URL/postgres" -qc 'DROP DATABASE IF EXISTS idp_ab_seed' -c 'CREATE DATABASE idp_ab_seed'
fi
env $(idp_env "$(seed_db)") "$SEED" --users "$USERS" --sample "$SAMPLE" --out "$work/seed" \
  --id-token-alg "$ID_TOKEN_ALG" >/dev/null
basic=$(client_basic "$work/seed/client.json")
if [ "$SCENARIO" = code ]; then codes=$(codes_for "$DURATION"); fi
if [[ $SCENARIO = token-* ]]; then
  # A client-credentials client in the seed, so in every run's copy of it.
  env $(idp_env "$(seed_db)") "$A" client create --name bench --grant-type client_credentials --scope media.read \
    >"$work/seed/cc-client.json"
fi
# The second server of a duel: the next port, and a seed folder of its own for the codes minted into its copy.
if [ -n "${DUEL:-}" ]; then cp -r "$work/seed" "$work/seed-b"; fi

# load_for PORT SEED_DIR: sets `load`, the wrk script and arguments of the scenario for the server at PORT.
load_for() {
  local url=http://127.0.0.1:$1 seed=$2
  case $SCENARIO in
    refresh) load=(tokens.lua "$url" -- refresh "$basic" /token "$seed/refresh_tokens.txt") ;;
    code) load=(tokens.lua "$url" -- code "$basic" /token "$seed/codes.txt" "$RP_REDIRECT_URI" "$CODE_VERIFIER") ;;
    introspect-refresh)
      load=(tokens.lua "$url" -- introspect "$basic" /introspect "$seed/refresh_tokens.txt" refresh_token) ;;
    introspect-access)
      load=(tokens.lua "$url" -- introspect "$basic" /introspect "$seed/access_tokens.txt" access_token) ;;
    userinfo) load=(tokens.lua "$url" -- bearer /userinfo "$seed/access_tokens.txt") ;;
    token-*)
      load=(report.lua "$url/token" -- "$(client_basic "$seed/cc-client.json")" \
        "grant_type=client_credentials&scope=media.read") ;;
    discovery) load=(report.lua "$url/.well-known/openid-configuration") ;;
    jwks) load=(report.lua "$url/jwks") ;;
  esac
}

connections=$CONNECTIONS
if [ -n "${DUEL:-}" ]; then connections=$((CONNECTIONS / 2)); fi

# start BUILD: a fresh copy of the database (with codes minted into it for the code scenario) and BUILD's
# server on it (see `place`), pinned to SERVER_CPU; its pid joins `servers`.
start() {
  local db bin port seed
  place "$1"
  if [ "$1" = B ] && [ -n "$FLOOR" ]; then
    # A's server is up (a duel starts A first): the floor answers with its JWKS and the headers it sent.
    curl -sf -D "$work/jwks.head" -o "$work/jwks.json" "http://127.0.0.1:$PORT/jwks"
    taskset -c "$SERVER_CPU" "$bin" "$FLOOR" "127.0.0.1:$port" "$work/jwks.json" "$work/jwks.head" \
      >"$work/server-B.log" 2>&1 &
    servers+=($!)
    wait_serving "$!" "$work/server-B.log" "http://127.0.0.1:$port/jwks"
    return
  fi
  db=$(fresh_db "${1,,}")
  if [ "$SCENARIO" = code ]; then env $(idp_env "$db") "$SEED" --codes "$codes" --out "$seed"; fi
  # Listening on its port, but one issuer for both servers of a duel: the seeded access tokens name the first.
  env $(idp_env "$db" "$port") IDP_ISSUER="http://127.0.0.1:$PORT" \
    ${TIMELINE:+RUST_LOG=warn,tower_http::trace::on_response=debug,idp::checkpoint=debug} \
    taskset -c "$SERVER_CPU" "$bin" serve >"$work/server-$1.log" 2>&1 &
  servers+=($!)
  wait_serving "$!" "$work/server-$1.log" "http://127.0.0.1:$port/readyz"
}

# report BUILD PAIR CPU_TICKS: one line of runs.tsv from the wrk report of BUILD.
report() {
  python3 - "$work/report-$1.json" "$3" "$(getconf CLK_TCK)" "$1" "$2" <<'EOF' | tee -a "$work/runs.tsv"
import json, sys
r = json.load(open(sys.argv[1]))
ticks, hz, build, pair = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if r["non_2xx"] or r["socket_errors"]:
    sys.exit(f"build {build}: {r['non_2xx']} non-2xx answers, {r['socket_errors']} socket errors")
rate = r["requests"] / (r["duration_us"] / 1e6)
cpu = ticks / hz * 1e6 / r["requests"]
print(f"{build:<5}{pair:<6}{rate:9.0f} {r['p50_us'] / 1000:9.2f} {r['p99_us'] / 1000:9.2f} "
      f"{r['p999_us'] / 1000:9.2f} {cpu:9.1f}")
EOF
  if [ -n "${TIMELINE:-}" ]; then python3 bench/timeline.py "$work/server-$1.log" | sed 's/^/    /'; fi
}

# place BUILD: the `bin`, `port` and `seed` folder of BUILD's server (in a duel, B's are the next port and a
# copy of the seed).
place() {
  bin=$A port=$PORT seed=$work/seed
  if [ "$1" = B ]; then bin=$B; fi
  if [ "$1" = B ] && [ -n "${DUEL:-}" ]; then port=$((PORT + 1)) seed=$work/seed-b; fi
}

# measure PAIR BUILD…: the servers of BUILD… (A, B or both) loaded at once for DURATION, one wrk each.
measure() {
  local pair=$1 build bin port seed pid i loaders=() before=() after=()
  shift
  servers=()
  for build in "$@"; do start "$build"; done
  for pid in "${servers[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  for build in "$@"; do
    place "$build"
    load_for "$port" "$seed"
    WRK_REPORT="$work/report-$build.json" taskset -c "$LOAD_CPU" wrk -t1 -c"$connections" -d"$DURATION" \
      -s "bench/wrk/${load[0]}" "${load[@]:1}" >/dev/null &
    loaders+=($!)
  done
  wait "${loaders[@]}"
  for pid in "${servers[@]}"; do after+=("$(cpu_ticks "$pid")"); done
  for pid in "${servers[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
  servers=()
  i=0
  for build in "$@"; do report "$build" "$pair" "$((after[i] - before[i]))"; i=$((i + 1)); done
}

printf '%-4s %-5s %9s %9s %9s %9s %9s\n' build pair req/s p50_ms p99_ms p99.9_ms cpu_us
for pair in $(seq 1 "$PAIRS"); do
  if [ -n "${DUEL:-}" ]; then
    measure "$pair" A B
  else
    measure "$pair" A
    measure "$pair" B
  fi
done
python3 - "$work/runs.tsv" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
pairs = {}
for build, pair, rate, _p50, _p99, _p999, cpu in rows:
    pairs.setdefault(pair, {})[build] = (float(rate), float(cpu))
ratios = [(p["B"][0] / p["A"][0], p["B"][1] / p["A"][1]) for p in pairs.values()]
print("B/A per pair: req/s " + ", ".join(f"{r:.3f}" for r, _ in ratios)
      + "; CPU per request " + ", ".join(f"{c:.3f}" for _, c in ratios))
EOF
