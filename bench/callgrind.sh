#!/usr/bin/env bash
# Instructions per request, counted by callgrind: repeatable on a busy machine, where wall-clock and CPU-time
# figures are not. Counts user space only (not the kernel's TCP work).
#
#   bench/callgrind.sh                     # client credentials (ES256, EdDSA), then the JWKS and discovery
#   ALGS=EdDSA DOCS= REQUESTS=4000 bench/callgrind.sh
#   IDP=/path/to/idp OUT=… bench/callgrind.sh  # a build of your own, nothing built (to compare two, one OUT each)
#
# ALGS: client-credentials token requests, the access token signed with each; DOCS: GETs of `jwks` and
# `discovery`. REQUESTS of each, over CONNECTIONS keep-alive connections, each kind on a server of its own.
# The server runs on its embedded defaults under valgrind, pinned to one core as in bench/run.sh. After a
# warm-up the counters are zeroed, REQUESTS requests are sent, and the counters are dumped; the profile is
# kept in OUT for `callgrind_annotate --inclusive=yes OUT/<alg or doc>.callgrind`. Prints instructions per
# request, and for tokens those of the signature (`KeyPair::sign`).
set -euo pipefail
if [ -n "${IDP:-}" ]; then
  IDP=$(realpath "$IDP")
  [ -x "$IDP" ] || { echo "IDP=$IDP is not an executable"; exit 1; }
fi
cd "$(dirname "$0")/.."

ALGS=${ALGS-"ES256 EdDSA"}
DOCS=${DOCS-"jwks discovery"}
REQUESTS=${REQUESTS:-2000}
CONNECTIONS=${CONNECTIONS:-4}
SERVER_CPU=${SERVER_CPU:-0}
PORT=${PORT:-18181}
OUT=${OUT:-bench/results/callgrind}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/idp-bench-target}

for doc in $DOCS; do
  case $doc in jwks | discovery) ;; *) echo "DOCS: jwks or discovery, not $doc"; exit 1 ;; esac
done
for tool in valgrind callgrind_control callgrind_annotate taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/callgrind.sh needs $tool"; exit 1; }
done
if [ -z "${IDP:-}" ]; then
  echo "== building (release, with line tables for the profile)"
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -q -p idp --bin idp
  IDP=$CARGO_TARGET_DIR/release/idp
fi
mkdir -p "$OUT"
work=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"; }
trap cleanup EXIT

# load N CONNECTIONS PATH [ID SECRET]: N requests split over CONNECTIONS keep-alive connections: token
# requests (client credentials, Basic) to PATH when a client is given, else GETs of PATH.
load() {
  python3 - "$PORT" "$@" <<'EOF'
import base64, http.client, sys, threading
port, n, conns, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
client = sys.argv[5:7]
headers = {"Authorization": "Basic " + base64.b64encode(":".join(client).encode()).decode(),
           "Content-Type": "application/x-www-form-urlencoded"} if client else {}
failed = []
def run(count):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(count):
        if client:
            c.request("POST", path, b"grant_type=client_credentials&scope=media.read", headers)
        else:
            c.request("GET", path)
        r = c.getresponse(); r.read()
        if r.status != 200: failed.append(r.status)
    c.close()
threads = [threading.Thread(target=run, args=(n // conns + (i < n % conns),)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failed: sys.exit(f"{len(failed)} requests failed, e.g. HTTP {failed[0]}")
EOF
}

# start NAME ALG: a server under callgrind in its own folder (dir), with its environment (env_vars).
start() {
  dir="$work/$1"; mkdir -p "$dir"
  env_vars="IDP_BIND=127.0.0.1:$PORT IDP_ISSUER=http://127.0.0.1:$PORT IDP_DATABASE_URL=sqlite://$dir/idp.db \
IDP_KEYS_DIR=$dir/keys IDP_SIGNING_ALGS=RS256,$2 IDP_ACCESS_TOKEN_ALG=$2 RUST_LOG=warn"
  # shellcheck disable=SC2086
  env $env_vars taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
    "$IDP" serve >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.2; done
}

# count NAME PATH [ID SECRET]: warms up, counts REQUESTS requests (total), stops the server, keeps the profile.
count() {
  local name=$1; shift
  load 400 "$CONNECTIONS" "$@"
  callgrind_control --zero "$pid" >/dev/null 2>&1
  load "$REQUESTS" "$CONNECTIONS" "$@"
  callgrind_control --dump "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  cp "$dir"/cg.*.1 "$OUT/$name.callgrind"
  total=$(awk '/^summary:/ { print $2 }' "$OUT/$name.callgrind")
}

for alg in $ALGS; do
  start "$alg" "$alg"
  # shellcheck disable=SC2086
  created=$(env $env_vars "$IDP" client create --name bench --grant-type client_credentials --scope media.read)
  read -r id secret < <(python3 -c 'import json,sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])' <<<"$created")
  count "$alg" /token "$id" "$secret"
  sign=$(callgrind_annotate --inclusive=yes --threshold=100 "$OUT/$alg.callgrind" 2>/dev/null |
    awk '/keys::KeyPair::sign \[/ && !found { gsub(",", "", $1); print $1; found = 1 }')
  echo "$alg: $((total / REQUESTS)) instructions per request, of which the signature $((${sign:-0} / REQUESTS))"
done

for doc in $DOCS; do
  path=/jwks
  if [ "$doc" = discovery ]; then path=/.well-known/openid-configuration; fi
  start "$doc" ES256
  count "$doc" "$path"
  echo "$doc: $((total / REQUESTS)) instructions per request"
done
