# Shared by bench/run.sh and bench/ab.sh (sourced, from the repository's root): the defaults both take from
# the environment, and the helpers that start our issuer and measure it.

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
# Loopback without TLS: over TLS, sqlx 0.9.0 can hold a query 40 ms (docs/deployment.md).
PG_PARAMS=${PG_PARAMS-sslmode=disable}
SERVER_CPU=${SERVER_CPU:-0}
# The authorization-code scenario: the relying party's redirect URI, and RFC 7636 Appendix B's verifier, whose
# challenge every minted code carries (idp/examples/bench_seed.rs, bench/peer/server.mjs).
RP_REDIRECT_URI=https://rp.bench.test/callback
CODE_VERIFIER=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
LOAD_CPU=${LOAD_CPU:-1}

# codes_for DURATION: how many authorization codes to mint for a code run of DURATION (`10s`): CODES, or 14,000
# a second. Codes live 60 s from their minting, so a run may last 50 s at most.
codes_for() {
  local seconds=${1%s}
  if [ "$seconds" = "$1" ] || ! [ "$seconds" -ge 1 ] 2>/dev/null || [ "$seconds" -gt 50 ]; then
    echo "DURATION=$1: the code scenario takes 1s to 50s (its codes live 60 s)" >&2
    exit 2
  fi
  echo "${CODES:-$((14000 * seconds))}"
}

# basic ID SECRET: HTTP Basic credentials. client_basic FILE: those of the client whose `client_id` and
# `client_secret` are in the JSON of FILE (`-`: standard input), as `idp client create` and bench_seed give them.
basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }
client_basic() {
  local id secret
  read -r id secret < <(python3 -c 'import json, sys
c = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
print(c["client_id"], c["client_secret"])' "$1")
  basic "$id" "$secret"
}

# pg_db NAME: the issuer's URL of the PostgreSQL database NAME.
pg_db() { echo "$PG_URL/$1${PG_PARAMS:+?$PG_PARAMS}"; }

# ours_env PORT ALG DIR DATABASE-URL: our issuer's environment, its keys under DIR/keys and its access tokens
# signed with ALG (IDP_SIGNING_ALGS drops the repeat when ALG is RS256).
ours_env() {
  echo "IDP_BIND=127.0.0.1:$1 IDP_ISSUER=http://127.0.0.1:$1 IDP_DATABASE_URL=$4 IDP_KEYS_DIR=$3/keys \
IDP_SIGNING_ALGS=RS256,$2 IDP_ACCESS_TOKEN_ALG=$2 RUST_LOG=warn"
}

# wait_serving PID LOG URL [tries of 0.1 s]: waits until URL answers, as served by the process PID, whose
# output is in LOG. Another process on the port would answer too (a bench/ab.sh or a server left running), so
# PID must still be running once URL answers, having bound the port; if it exits, its log says why.
wait_serving() {
  local pid=$1 log=$2 url=$3 _
  for _ in $(seq 1 "${4:-100}"); do
    if curl -sf -o /dev/null "$url"; then
      sleep 0.2
      kill -0 "$pid" 2>/dev/null && return 0
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server for $url did not start; its log ($log):"; tail -n 20 "$log"; exit 1
}

# The user and system CPU time of process PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
