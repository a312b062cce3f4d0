#!/usr/bin/env bash
# Side-by-side benchmark of our issuer against node-oidc-provider (bench/peer), on this machine, in one run.
#
# Both servers are pinned to the same core (SERVER_CPU) and the load generator, oha, to another (LOAD_CPU).
# Every scenario runs A B A B (ours, peer, ours, peer) with the same duration and connections; the table
# gives the mean of the two runs of each. Loopback only; every run is bounded by DURATION.
#
#   bench/run.sh                       # all scenarios, 15 s each
#   DURATION=5s ALGS="ES256" bench/run.sh
#
# Output: bench/results/<scenario>-<server>-<n>.json (oha) and bench/results/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-32}
ALGS=${ALGS:-"ES256 EdDSA RS256"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-bench/results}
OURS_PORT=${OURS_PORT:-18080}
PEER_PORT=${PEER_PORT:-13000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/idp-bench-target}
PEER_SECRET=bench-secret-bench-secret-bench-secret-xx

for tool in taskset node npm curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool"; exit 1; }
done
command -v oha >/dev/null || cargo install oha --locked
echo "== building (release)"
cargo build --release -q -p idp --bin idp
(cd bench/peer && npm ci --no-audit --no-fund --loglevel=error)
IDP=$CARGO_TARGET_DIR/release/idp
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/runs.tsv
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() {  # url
  for _ in $(seq 1 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not start"; exit 1
}

ours_env() {  # alg dir
  local algs="RS256"; [ "$1" != RS256 ] && algs="RS256,$1"
  echo "IDP_BIND=127.0.0.1:$OURS_PORT IDP_ISSUER=http://127.0.0.1:$OURS_PORT IDP_DATABASE_URL=sqlite://$2/idp.db \
IDP_KEYS_DIR=$2/keys IDP_SIGNING_ALGS=$algs IDP_ACCESS_TOKEN_ALG=$1 RUST_LOG=warn"
}

start_ours() {  # alg → sets OURS_PID OURS_ID OURS_SECRET
  local dir="$work/ours-$1"; mkdir -p "$dir"
  env $(ours_env "$1" "$dir") taskset -c "$SERVER_CPU" "$IDP" serve >"$dir/log" 2>&1 &
  OURS_PID=$!; pids+=("$OURS_PID")
  wait_ready "http://127.0.0.1:$OURS_PORT/readyz"
  local created
  created=$(env $(ours_env "$1" "$dir") "$IDP" client create --name bench --grant-type client_credentials --scope media.read)
  OURS_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$created")
  OURS_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$created")
}

start_peer() {  # alg → sets PEER_PID
  PORT=$PEER_PORT ALG=$1 CLIENT_ID=bench CLIENT_SECRET=$PEER_SECRET NODE_ENV=production \
    taskset -c "$SERVER_CPU" node bench/peer/server.mjs >"$work/peer-$1.log" 2>&1 &
  PEER_PID=$!; pids+=("$PEER_PID")
  wait_ready "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure SCENARIO SERVER RUN PID URL [oha args…]: one bounded oha run, with the server's CPU time.
measure() {
  local scenario=$1 server=$2 run=$3 pid=$4 url=$5; shift 5
  local before after
  before=$(cpu_ticks "$pid")
  taskset -c "$LOAD_CPU" oha -z "$DURATION" -c "$CONNECTIONS" --no-tui --output-format json "$@" "$url" \
    >"$OUT/$scenario-$server-$run.json"
  after=$(cpu_ticks "$pid")
  printf '%s\t%s\t%s\t%s\n' "$scenario" "$server" "$run" "$((after - before))" >>"$OUT/runs.tsv"
  echo "   $scenario $server run $run done"
}

basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }

token_request() {  # id secret → TOKEN_ARGS: oha arguments of a client-credentials token request
  TOKEN_ARGS=(-m POST -H "Authorization: Basic $(basic "$1" "$2")"
    -H "Content-Type: application/x-www-form-urlencoded" -d "grant_type=client_credentials&scope=media.read")
}

echo "== signing limit per core"
taskset -c "$SERVER_CPU" cargo bench -q -p idp --bench signing 2>/dev/null | tee "$OUT/signing.jsonl"

for alg in $ALGS; do
  echo "== client credentials, $alg"
  start_ours "$alg"; start_peer "$alg"
  for run in 1 2; do
    token_request "$OURS_ID" "$OURS_SECRET"
    measure "token-$alg" ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT/token" "${TOKEN_ARGS[@]}"
    token_request bench "$PEER_SECRET"
    measure "token-$alg" peer "$run" "$PEER_PID" "http://127.0.0.1:$PEER_PORT/token" "${TOKEN_ARGS[@]}"
  done
  if [ "$alg" = ES256 ]; then
    echo "== discovery, JWKS and introspection"
    for run in 1 2; do
      measure discovery ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT/.well-known/openid-configuration"
      measure discovery peer "$run" "$PEER_PID" "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration"
      measure jwks ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT/jwks"
      measure jwks peer "$run" "$PEER_PID" "http://127.0.0.1:$PEER_PORT/jwks"
    done
    token=$(curl -s -u "$OURS_ID:$OURS_SECRET" -d "grant_type=client_credentials&scope=media.read" \
      "http://127.0.0.1:$OURS_PORT/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    for run in 1 2; do
      measure introspection ours "$run" "$OURS_PID" "http://127.0.0.1:$OURS_PORT/introspect" -m POST \
        -H "Authorization: Basic $(basic "$OURS_ID" "$OURS_SECRET")" \
        -H "Content-Type: application/x-www-form-urlencoded" -d "token=$token"
    done
  fi
  stop "$OURS_PID"; stop "$PEER_PID"
done

python3 bench/summarise.py "$OUT" | tee "$OUT/summary.md"
