#!/usr/bin/env bash
# tlspeek in transparent mode, end to end, in a throwaway network namespace:
#
#   1. creates a network namespace (only its own loopback: nothing leaves it),
#   2. starts an origin server there on 127.0.0.1:443 (https) and :80 (http),
#   3. adds an iptables REDIRECT rule that sends connections to ports 80/443
#      to tlspeek's transparent listener, exempting tlspeek's own upstream
#      connections by their SO_MARK (--mark),
#   4. runs tlspeek and curl in it; curl has NO proxy setting, it only trusts
#      tlspeek's CA (--cacert), as an app whose traffic you redirect would,
#   5. prints what tlspeek showed, and tears everything down (trap on EXIT).
#
# Needs root (network namespaces, iptables). Nothing outside the namespace is
# touched: the rules live and die with it, the CAs go to a temporary directory.
#
#   sudo examples/transparent/run.sh
#
# Environment: TLSPEEK (the binary, default ./tlspeek of this checkout),
# PYTHON (default python3), MARK (the SO_MARK value, default 1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TLSPEEK=${TLSPEEK:-$ROOT/tlspeek}
PYTHON=${PYTHON:-python3}
MARK=${MARK:-1}
PORT=8081 # tlspeek's transparent listener inside the namespace

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh needs root: it creates a network namespace and iptables rules inside it." >&2
  echo "Run it as: sudo $0" >&2
  exit 1
fi
if [ ! -x "$TLSPEEK" ]; then
  echo "no tlspeek binary at $TLSPEEK: run 'make' in $ROOT first (or set TLSPEEK=/path/to/tlspeek)" >&2
  exit 1
fi
for tool in ip iptables curl "$PYTHON"; do
  command -v "$tool" >/dev/null || { echo "run.sh needs '$tool' (not found in PATH)" >&2; exit 1; }
done

NS=tpk-example-$$
WORK=$(mktemp -d /tmp/tlspeek-transparent.XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  # Anything else still running in the namespace was started by this script.
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
  echo "== cleaned up: namespace $NS deleted (its iptables rules went with it), $WORK removed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Background processes are started with a plain `ip netns exec` (not through a
# shell function, which would put a subshell in between): ip execs the
# command, so $! is the process itself and kill reaches it.
in_ns() { ip netns exec "$NS" "$@"; }

wait_for() { # FILE TEXT: until TEXT shows up in FILE (at most 15 s)
  for _ in $(seq 150); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

echo "== network namespace $NS"
ip netns add "$NS"
in_ns ip link set lo up

echo "== certificates (in $WORK)"
# The origin server's certificate, from a private CA that tlspeek is told to
# trust with --upstream-ca (as you would for a dev server).
"$TLSPEEK" --ca-dir "$WORK/origin-ca" ca mint localhost 127.0.0.1 ::1 --out "$WORK/origin.pem" >/dev/null
"$TLSPEEK" --ca-dir "$WORK/origin-ca" ca export "$WORK/origin-ca.pem" >/dev/null
# tlspeek's own CA: the one the client trusts.
"$TLSPEEK" --ca-dir "$WORK/tlspeek-ca" ca export "$WORK/tlspeek-ca.pem" >/dev/null

echo "== origin server on 127.0.0.1:443 (https) and 127.0.0.1:80 (http), inside the namespace"
ip netns exec "$NS" "$PYTHON" "$ROOT/tests/e2e/upstream_server.py" --port 443 --tls "$WORK/origin.pem" \
  >"$WORK/origin-https.log" 2>&1 &
PIDS+=("$!")
ip netns exec "$NS" "$PYTHON" "$ROOT/tests/e2e/upstream_server.py" --port 80 >"$WORK/origin-http.log" 2>&1 &
PIDS+=("$!")
wait_for "$WORK/origin-https.log" READY
wait_for "$WORK/origin-http.log" READY

echo "== iptables rule (nat table, OUTPUT chain: connections made by this machine's own programs)"
in_ns iptables -t nat -A OUTPUT -p tcp -d 127.0.0.1 -m multiport --dports 80,443 \
  -m mark ! --mark "$MARK" -j REDIRECT --to-ports "$PORT"
in_ns iptables -t nat -S OUTPUT | sed 's/^/   /'

echo "== tlspeek --mode transparent@127.0.0.1:$PORT --mark $MARK -v"
ip netns exec "$NS" "$TLSPEEK" --ca-dir "$WORK/tlspeek-ca" --upstream-ca "$WORK/origin-ca.pem" \
  --mode "transparent@127.0.0.1:$PORT" --mark "$MARK" -v \
  >"$WORK/tlspeek.out" 2>"$WORK/tlspeek.err" &
TLSPEEK_PID=$!
PIDS+=("$TLSPEEK_PID")
wait_for "$WORK/tlspeek.err" "listening on"

echo "== curl, with no proxy setting, trusting only tlspeek's CA"
for url in https://127.0.0.1/json http://127.0.0.1/text; do
  echo "\$ curl --cacert tlspeek-ca.pem $url"
  in_ns env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
    curl -sS --max-time 30 --cacert "$WORK/tlspeek-ca.pem" "$url"
  echo
done

# SIGTERM: tlspeek finishes the flows in progress and exits 0.
kill -TERM "$TLSPEEK_PID"
status=0
wait "$TLSPEEK_PID" || status=$?
echo "== tlspeek exited with status $status"

echo "== what tlspeek showed (stdout)"
cat "$WORK/tlspeek.out"
echo "== tlspeek's diagnostics (stderr)"
cat "$WORK/tlspeek.err"
[ "$status" -eq 0 ]
