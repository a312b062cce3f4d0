#!/usr/bin/env bash
# Side-by-side benchmark of our issuer against node-oidc-provider (bench/peer), on this machine, in one run.
#
# Both servers are pinned to the same core (SERVER_CPU) and the load generator, wrk, to another (LOAD_CPU).
# Every side-by-side scenario runs A B A B (ours, peer, ours, peer) with the same duration and connections;
# the table gives the mean of the two runs of each. Loopback only; every run is bounded by DURATION.
#
# Scenarios:
#   token-<alg>          client credentials, client_secret_basic, JWT access token signed with <alg>
#   discovery, jwks      the two public documents; the JWKS also from two floor servers
#                        (idp/examples/http_floor.rs) that send its bytes and headers and do nothing else,
#                        one on bare hyper, one on axum with one route: what any server on our stack pays
#   userinfo             a user's access token (ours: JWT; the peer's userinfo takes its opaque tokens)
#   introspect-access    introspection of a user's access token (ours: JWT + grant check; peer: opaque)
#   introspect-refresh   introspection of a refresh token (both: a stored, opaque token)
#   refresh              the refresh-token grant with rotation and a new ID token (signed with ID_TOKEN_ALG,
#                        ES256 by default; RS256 is the other choice), each token used once
#   code                 the authorization-code grant with PKCE (S256): access, ID and refresh tokens for a code
#                        minted just before the run (CODES of them; codes live 60 s), each code used once
#   login                browsers signing in with a password (ours only; measured against the argon2 limit,
#                        measured again just before each login run)
# userinfo to login run on databases of LEVELS users (each with a grant and a refresh token),
# seeded by idp/examples/bench_seed.rs (and by the peer itself): on SQLite, and on PostgreSQL when PG_URL
# answers. The peer, whose store is in memory, runs beside ours at PEER_LEVEL on SQLite.
#
#   bench/run.sh                                  # everything, 10 s runs
#   DURATION=5s ALGS=ES256 LEVELS=1000 bench/run.sh
#
# Output: bench/results/<run>.json (wrk reports), runs.tsv and summary.md (the issue's targets met or missed, then
# the tables).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ALGS=${ALGS:-"ES256 EdDSA RS256"}
LEVELS=${LEVELS:-"1000 100000 1000000"}
PEER_LEVEL=${PEER_LEVEL:-100000}
ID_TOKEN_ALG=${ID_TOKEN_ALG:-ES256}
SAMPLE=${SAMPLE:-9000}
OUT=${OUT:-bench/results}
OURS_PORT=${OURS_PORT:-18080}
PEER_PORT=${PEER_PORT:-13000}
PEER_ADMIN_PORT=${PEER_ADMIN_PORT:-13001}
FLOOR_PORT=${FLOOR_PORT:-18070}
CODES=$(codes_for "$DURATION")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/idp-bench-target}
PEER_SECRET=bench-secret-bench-secret-bench-secret-xx
PEER_RP_SECRET=bench-rp-secret-bench-rp-secret-bench-rp

for tool in taskset node npm curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool"; exit 1; }
done
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
echo "== building (release)"
cargo build --release -q -p idp --bin idp --example bench_seed --example http_floor
(cd bench/peer && npm ci --no-audit --no-fund --loglevel=error)
IDP=$CARGO_TARGET_DIR/release/idp
SEED=$CARGO_TARGET_DIR/release/examples/bench_seed
FLOOR=$CARGO_TARGET_DIR/release/examples/http_floor
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/runs.tsv "$OUT"/run-limits.jsonl
work=$(mktemp -d)
pids=()
cleanup() { thaw; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_ours() {  # alg dir database-url → OURS_PID
  env $(ours_env "$OURS_PORT" "$1" "$2" "$3") taskset -c "$SERVER_CPU" "$IDP" serve >"$2/log" 2>&1 &
  OURS_PID=$!; pids+=("$OURS_PID")
  wait_serving "$OURS_PID" "$2/log" "http://127.0.0.1:$OURS_PORT/readyz"
}

start_peer() {  # alg [seed-users seed-dir] → PEER_PID
  local seed=()
  [ $# -gt 1 ] && seed=(SEED_USERS="$2" SEED_SAMPLE="$SAMPLE" SEED_OUT="$3" ID_TOKEN_ALG="$ID_TOKEN_ALG"
    ADMIN_PORT="$PEER_ADMIN_PORT")
  env PORT=$PEER_PORT ALG="$1" CLIENT_ID=bench CLIENT_SECRET=$PEER_SECRET RP_SECRET=$PEER_RP_SECRET \
    NODE_ENV=production "${seed[@]}" taskset -c "$SERVER_CPU" node bench/peer/server.mjs >"$work/peer-$1.log" 2>&1 &
  PEER_PID=$!; pids+=("$PEER_PID")
  wait_serving "$PEER_PID" "$work/peer-$1.log" "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" 3000
}

start_floor() {  # hyper|axum body-file headers-file → FLOOR_PID, serving at FLOOR_PORT
  taskset -c "$SERVER_CPU" "$FLOOR" "$1" "127.0.0.1:$FLOOR_PORT" "$2" "$3" >"$work/floor-$1.log" 2>&1 &
  FLOOR_PID=$!; pids+=("$FLOOR_PID")
  wait_serving "$FLOOR_PID" "$work/floor-$1.log" "http://127.0.0.1:$FLOOR_PORT/jwks"
}

# stop PID: stops a server and forgets it, so that freeze, thaw and cleanup never signal a reused pid.
stop() {
  local p kept=()
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

# freeze [PID]: stops (SIGSTOP) every server started here but PID, for one measurement. Both servers share one
# core, and an idle server still works in the background: the peer's garbage collector took that core for
# seconds in the middle of our code runs (p99 35-41 ms against 14 ms without the peer beside it), and ours
# checkpoints every second. thaw lets them go on.
freeze() { local p; for p in "${pids[@]}"; do [ "$p" = "${1:-}" ] || kill -STOP "$p" 2>/dev/null || true; done; }
thaw() { local p; for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; }

# run_load SCENARIO LEVEL BACKEND SERVER RUN PID COMMAND…: one bounded load run, whose command writes its
# report to $REPORT, with the server's CPU time over it.
run_load() {
  local scenario=$1 level=$2 backend=$3 server=$4 run=$5 pid=$6; shift 6
  local before after
  REPORT="$OUT/$scenario-$level-$backend-$server-$run.json"
  freeze "$pid"
  before=$(cpu_ticks "$pid")
  "$@"
  after=$(cpu_ticks "$pid")
  thaw
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$level" "$backend" "$server" "$run" "$((after - before))" \
    >>"$OUT/runs.tsv"
  echo "   $scenario ${level/-/} $backend $server run $run done"
}

# measure SCENARIO LEVEL BACKEND SERVER RUN PID URL SCRIPT [script args…]: a wrk run.
measure() {
  run_load "${@:1:6}" wrk_run "${@:7}"
}
wrk_run() {  # url script [script args…]
  WRK_REPORT="$REPORT" taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "bench/wrk/$2" "$1" -- "${@:3}" >/dev/null
}

# limit_of_moment SCENARIO LEVEL BACKEND RUN BENCH: the per-core limit BENCH (signing, for SIGN_ALGS; password)
# measured again on the server's core just before one of our runs, the servers stopped meanwhile, into
# run-limits.jsonl: the machine's speed moves during a run (a shared virtual machine), so each run of ours that
# is counted against a limit is counted against the limit of its own moment.
limit_of_moment() {
  freeze
  per_core_limit "$5" | sed "s/^{/{\"scenario\":\"$1\",\"level\":\"$2\",\"backend\":\"$3\",\"run\":\"$4\",/" \
    >>"$OUT/run-limits.jsonl"
  thaw
}

# measure_login LEVEL BACKEND RUN PID URL USERS_FILE: browsers signing in (bench/login.py), after the argon2
# limit of the moment: a sign-in is mostly a hash.
measure_login() {
  limit_of_moment login "$1" "$2" "$3" password
  run_load login "$1" "$2" ours "$3" "$4" login_run "$5" "$6"
}
login_run() {  # url users-file; $REPORT is the run's, set by run_load
  taskset -c "$LOAD_CPU" python3 bench/login.py "$1" "$2" "${DURATION%s}" "$CONNECTIONS" "$REPORT"
}

# per_core_limit BENCH: one of idp's limit benches (signing, password) on the server's core; JSON lines.
per_core_limit() { taskset -c "$SERVER_CPU" cargo bench -q -p idp --bench "$1" 2>/dev/null; }

echo "== signing and password limits per core"
for bench in signing password; do per_core_limit "$bench"; done | tee "$OUT/limits.jsonl"
echo "== resource-server token validation (media-api), one core"
taskset -c "$SERVER_CPU" cargo bench -q -p media-api --bench validate 2>/dev/null | tee "$OUT/validate.jsonl"

for alg in $ALGS; do
  echo "== client credentials, $alg"
  dir="$work/ours-$alg"; mkdir -p "$dir"
  start_ours "$alg" "$dir" "sqlite://$dir/idp.db"
  created=$(env $(ours_env "$OURS_PORT" "$alg" "$dir" "sqlite://$dir/idp.db") "$IDP" client create --name bench \
    --grant-type client_credentials --scope media.read)
  ours_basic=$(client_basic - <<<"$created")
  start_peer "$alg"
  body="grant_type=client_credentials&scope=media.read"
  for run in 1 2; do
    (export SIGN_ALGS=$alg SIGN_SECONDS=2; limit_of_moment "token-$alg" - sqlite "$run" signing)
    measure "token-$alg" - sqlite ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT/token" report.lua \
      "$ours_basic" "$body"
    measure "token-$alg" - sqlite peer "$run" "$PEER_PID" "http://127.0.0.1:$PEER_PORT/token" report.lua \
      "$(basic bench "$PEER_SECRET")" "$body"
  done
  if [ "$alg" = ES256 ]; then
    echo "== discovery and JWKS (and the JWKS from the floor servers)"
    # The floor servers send our JWKS with the headers we sent with it.
    curl -sf "http://127.0.0.1:$OURS_PORT/jwks" -D "$work/jwks.head" -o "$work/jwks.json"
    for run in 1 2; do
      for doc in discovery:/.well-known/openid-configuration jwks:/jwks; do
        measure "${doc%%:*}" - sqlite ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT${doc#*:}" report.lua
        measure "${doc%%:*}" - sqlite peer "$run" "$PEER_PID" "http://127.0.0.1:$PEER_PORT${doc#*:}" report.lua
      done
      for floor in axum hyper; do
        start_floor "$floor" "$work/jwks.json" "$work/jwks.head"
        measure jwks - sqlite "floor-$floor" "$run" "$FLOOR_PID" "http://127.0.0.1:$FLOOR_PORT/jwks" report.lua
        stop "$FLOOR_PID"
      done
    done
  fi
  stop "$OURS_PID"; stop "$PEER_PID"
done

# mint_codes SERVER SEED_DIR: CODES authorization codes in SEED_DIR/codes.txt, minted just before a code run
# (they live 60 s): ours by bench_seed into the level's database ($dir and $db of the loop below), the peer's
# through its admin port.
mint_codes() {
  if [ "$1" = ours ]; then
    env $(ours_env "$OURS_PORT" ES256 "$dir" "$db") "$SEED" --codes "$CODES" --out "$2"
  else
    curl -sf -X POST "http://127.0.0.1:$PEER_ADMIN_PORT/codes?n=$CODES" -o "$2/codes.txt"
  fi
}

# user_scenarios LEVEL BACKEND SERVER PID PORT BASIC INTROSPECT_PATH USERINFO_PATH SEED_DIR RUN
user_scenarios() {
  local level=$1 backend=$2 server=$3 pid=$4 port=$5 basic=$6 introspect=$7 userinfo=$8 seed=$9 run=${10}
  local url="http://127.0.0.1:$port" half
  # Each run refreshes its own half of the sample: a token is never presented twice. Both runs introspect
  # the second half, which run 2's refresh rotates only after its introspection: every token is live.
  half=$(( $(wc -l <"$seed/refresh_tokens.txt") / 2 ))
  head -n "$half" "$seed/refresh_tokens.txt" >"$seed/refresh-1.txt"
  tail -n +"$((half + 1))" "$seed/refresh_tokens.txt" >"$seed/refresh-2.txt"
  measure userinfo "$level" "$backend" "$server" "$run" "$pid" "$url" tokens.lua \
    bearer "$userinfo" "$seed/access_tokens.txt"
  measure introspect-access "$level" "$backend" "$server" "$run" "$pid" "$url" tokens.lua \
    introspect "$basic" "$introspect" "$seed/access_tokens.txt" access_token
  measure introspect-refresh "$level" "$backend" "$server" "$run" "$pid" "$url" tokens.lua \
    introspect "$basic" "$introspect" "$seed/refresh-2.txt" refresh_token
  measure refresh "$level" "$backend" "$server" "$run" "$pid" "$url" tokens.lua \
    refresh "$basic" /token "$seed/refresh-$run.txt"
  mint_codes "$server" "$seed"
  measure code "$level" "$backend" "$server" "$run" "$pid" "$url" tokens.lua \
    code "$basic" /token "$seed/codes.txt" "$RP_REDIRECT_URI" "$CODE_VERIFIER"
  # The peer's sign-in pages are development stand-ins without a password check: ours only.
  if [ "$server" = ours ]; then measure_login "$level" "$backend" "$run" "$pid" "$url" "$seed/users.txt"; fi
}

backends=(sqlite)
if command -v psql >/dev/null && psql "$PG_URL/postgres" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  backends+=(postgres)
else
  echo "== PostgreSQL at $PG_URL does not answer: the PostgreSQL rows are skipped"
fi

for backend in "${backends[@]}"; do
  for level in $LEVELS; do
    echo "== users, grants and tokens: $level on $backend"
    dir="$work/$backend-$level"; mkdir -p "$dir"
    if [ "$backend" = sqlite ]; then
      db="sqlite://$dir/idp.db"
    else
      psql "$PG_URL/postgres" -qc 'DROP DATABASE IF EXISTS idp_bench' -c 'CREATE DATABASE idp_bench'
      db=$(pg_db idp_bench)
    fi
    env $(ours_env "$OURS_PORT" ES256 "$dir" "$db") "$SEED" --users "$level" --sample "$SAMPLE" --out "$dir/seed" \
      --id-token-alg "$ID_TOKEN_ALG"
    start_ours ES256 "$dir" "$db"
    ours_basic=$(client_basic "$dir/seed/client.json")
    peer=false
    if [ "$backend" = sqlite ] && [ "$level" = "$PEER_LEVEL" ]; then
      peer=true
      start_peer ES256 "$level" "$dir/peer-seed"
    fi
    for run in 1 2; do
      user_scenarios "$level" "$backend" ours "$OURS_PID" "$OURS_PORT" "$ours_basic" /introspect /userinfo \
        "$dir/seed" "$run"
      if $peer; then
        user_scenarios "$level" "$backend" peer "$PEER_PID" "$PEER_PORT" "$(basic bench-rp "$PEER_RP_SECRET")" \
          /token/introspection /me "$dir/peer-seed" "$run"
      fi
    done
    stop "$OURS_PID"; $peer && stop "$PEER_PID"
    [ "$backend" = postgres ] && psql "$PG_URL/postgres" -qc 'DROP DATABASE IF EXISTS idp_bench'
  done
done

python3 bench/summarise.py "$OUT" "$PEER_LEVEL" | tee "$OUT/summary.md"
