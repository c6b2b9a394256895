#!/bin/sh
# http-vs-https: the same two files fetched over plain HTTP and over HTTPS
# through tlspeek, shown the way a sniffer sees them and the way tlspeek
# sees them. Everything runs on 127.0.0.1 and is removed on exit.
#
#   examples/http-vs-https/run.sh        (TLSPEEK_BIN overrides ../../tlspeek)
#   examples/http-vs-https/run.sh --web [PORT]
#        the same, and the first tlspeek also serves its flow browser on
#        127.0.0.1:PORT (default 8081) until you press Enter
set -eu

WEB=""
case "${1:-}" in
  --web)
    WEB=${2:-8081}
    case $WEB in
      ''|*[!0-9]*) echo "run.sh: --web takes a port number, not '$WEB'" >&2; exit 2 ;;
    esac
    [ "$WEB" -ge 1 ] && [ "$WEB" -le 65535 ] || { echo "run.sh: --web port $WEB is out of range" >&2; exit 2; }
    ;;
  '') ;;
  *) echo "usage: run.sh [--web [PORT]]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${TLSPEEK_BIN:-$HERE/../../tlspeek}
[ -x "$BIN" ] || { echo "run.sh: no tlspeek at $BIN (run make, or set TLSPEEK_BIN)" >&2; exit 2; }
for tool in python3 curl; do
  command -v $tool >/dev/null || { echo "run.sh: needs $tool" >&2; exit 2; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/http-vs-https.XXXXXX")
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the files: a small JavaScript file and a PNG --------------------------
mkdir -p "$TMP/www"
cat > "$TMP/www/app.js" <<'JS'
// app.js: the file the study note fetched over HTTP, in miniature.
var menu_str = {status: "Status", wan: "WAN", lan: "LAN", wlan: "Wireless"};
function greet(name) {
  return "Hello, " + name + "! Sent as plain text over HTTP, " +
         "or hidden inside TLS records over HTTPS.";
}
JS
python3 - "$TMP/www/logo.png" <<'PY'
import struct, sys, zlib
w = h = 8
raw = b"".join(b"\x00" + b"".join(bytes((x * 32, y * 32, 160)) for x in range(w)) for y in range(h))
def chunk(t, d):
    return struct.pack("!I", len(d)) + t + d + struct.pack("!I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

# ---- certificates: an upstream CA (like a public CA) and tlspeek's own CA ----
"$BIN" --ca-dir "$TMP/upstream-ca" ca mint localhost 127.0.0.1 --out "$TMP/origin.pem" >/dev/null 2>&1
"$BIN" --ca-dir "$TMP/upstream-ca" ca export "$TMP/upstream-ca.pem" >/dev/null 2>&1
"$BIN" --ca-dir "$TMP/proxy-ca" ca export "$TMP/proxy-ca.pem" >/dev/null 2>&1

# ---- origin servers -----------------------------------------------------------
# Not called in $(...): a subshell would lose the PIDS it records.
start_origin() { # $1: name, rest: origin.py options; sets ORIGIN_PORT
  name=$1; shift
  python3 "$HERE/origin.py" --dir "$TMP/www" "$@" > "$TMP/$name.port" 2>"$TMP/$name.err" &
  PIDS="$PIDS $!"
  i=0
  while ! grep -q PORT "$TMP/$name.port" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "run.sh: $name did not start" >&2; cat "$TMP/$name.err" >&2; exit 1; }
    sleep 0.1
  done
  ORIGIN_PORT=$(sed -n 's/^PORT //p' "$TMP/$name.port")
}
start_origin http
HTTP_PORT=$ORIGIN_PORT
start_origin https --tls "$TMP/origin.pem"
HTTPS_PORT=$ORIGIN_PORT

# ---- tlspeek ------------------------------------------------------------------
# Two of them: the first as it comes (TLS 1.3 with curl), the second with the
# client leg held to TLS 1.2 (--client-tls-max 1.2), where the classic steps
# 1-9 travel in the clear. Not called in $(...), as above.
start_tlspeek() { # $1: name, rest: extra options; sets PROXY_PORT, TLSPEEK_PID
  name=$1; shift
  PROXY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN" --ca-dir "$TMP/proxy-ca" -l "127.0.0.1:$PROXY_PORT" --upstream-ca "$TMP/upstream-ca.pem" \
    -q --handshake --wire --wire-limit 48 --explain "$@" ${DEMO_TLSPEEK_ARGS:-} \
    > "$TMP/$name.out" 2> "$TMP/$name.err" &
  TLSPEEK_PID=$!
  PIDS="$PIDS $TLSPEEK_PID"
  i=0
  while ! grep -q "listening on" "$TMP/$name.err" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || { echo "run.sh: tlspeek did not start" >&2; cat "$TMP/$name.err" >&2; exit 1; }
    kill -0 $TLSPEEK_PID 2>/dev/null || { echo "run.sh: tlspeek exited" >&2; cat "$TMP/$name.err" >&2; exit 1; }
    sleep 0.1
  done
}
if [ -n "$WEB" ]; then
  start_tlspeek tlspeek --web "127.0.0.1:$WEB"
else
  start_tlspeek tlspeek
fi
TLSPEEK13_PID=$TLSPEEK_PID
PROXY13_PORT=$PROXY_PORT
start_tlspeek tlspeek12 --client-tls-max 1.2
TLSPEEK12_PID=$TLSPEEK_PID
PROXY12_PORT=$PROXY_PORT

# ---- optional: a real capture of the HTTPS leg, when tshark is there ----------
CAPTURE=""
if [ "${DEMO_TSHARK:-1}" = 1 ] && command -v tshark >/dev/null 2>&1; then
  tshark -q -i lo -f "tcp port $HTTPS_PORT" -w "$TMP/https.pcap" >/dev/null 2>&1 &
  CAPTURE=$!
  PIDS="$PIDS $CAPTURE"
  sleep 1.5  # tshark needs a moment before it captures
fi

# ---- the two fetches, one connection each ------------------------------------
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY \
  SSL_CERT_FILE CURL_CA_BUNDLE
curl -sS --proxy "http://127.0.0.1:$PROXY13_PORT" \
  -o "$TMP/http-app.js" "http://127.0.0.1:$HTTP_PORT/app.js" \
  -o "$TMP/http-logo.png" "http://127.0.0.1:$HTTP_PORT/logo.png"
curl -sS --proxy "http://127.0.0.1:$PROXY13_PORT" --cacert "$TMP/proxy-ca.pem" --http1.1 \
  -o "$TMP/https-app.js" "https://localhost:$HTTPS_PORT/app.js" \
  -o "$TMP/https-logo.png" "https://localhost:$HTTPS_PORT/logo.png"
# The same HTTPS fetch of app.js, through the tlspeek whose client leg stops at TLS 1.2.
curl -sS --proxy "http://127.0.0.1:$PROXY12_PORT" --cacert "$TMP/proxy-ca.pem" --http1.1 \
  -o "$TMP/tls12-app.js" "https://localhost:$HTTPS_PORT/app.js"
cmp -s "$TMP/http-app.js" "$TMP/www/app.js" && cmp -s "$TMP/https-logo.png" "$TMP/www/logo.png" &&
  cmp -s "$TMP/tls12-app.js" "$TMP/www/app.js" ||
  { echo "run.sh: curl did not get the files" >&2; exit 1; }

sleep 0.5
if [ -n "$WEB" ]; then
  # The same story in the browser: the plain-HTTP flows and the HTTPS ones,
  # each with its Wire tab (the bytes a sniffer sees beside the plaintext).
  URL=$(sed -n 's/^tlspeek: web: //p' "$TMP/tlspeek.err" | head -1)
  echo "tlspeek demo: the flow browser of the first tlspeek: $URL"
  echo "tlspeek demo: open it, compare the Wire tab of the http:// and the https:// flows;"
  echo "tlspeek demo: press Enter here to end it and print the console's view."
  read -r _ || true
fi
kill -TERM $TLSPEEK13_PID $TLSPEEK12_PID
wait $TLSPEEK13_PID 2>/dev/null || true
wait $TLSPEEK12_PID 2>/dev/null || true

echo "tlspeek demo: the same app.js ($(wc -c < "$TMP/www/app.js") bytes) and logo.png" \
     "($(wc -c < "$TMP/www/logo.png") bytes),"
echo "fetched with curl through tlspeek from http://127.0.0.1:$HTTP_PORT and https://localhost:$HTTPS_PORT"
# tlspeek's own output (the TLS 1.2 one beside it, as FILE.tls12)
[ -z "${DEMO_RAW_OUT:-}" ] || { cp "$TMP/tlspeek.out" "$DEMO_RAW_OUT"; cp "$TMP/tlspeek12.out" "$DEMO_RAW_OUT.tls12"; }
python3 "$HERE/sections.py" "$TMP/tlspeek.out" "$HTTP_PORT" "$HTTPS_PORT" "$TMP/tlspeek12.out" ||
  RESULT=$?

if [ -n "$CAPTURE" ]; then
  kill -INT $CAPTURE 2>/dev/null || true
  wait $CAPTURE 2>/dev/null || true
  echo
  echo "=============================================================================="
  echo "=== 6. A real capture of the HTTPS leg (tlspeek <-> origin), by tshark"
  echo "=============================================================================="
  tshark -n -r "$TMP/https.pcap" -d "tcp.port==$HTTPS_PORT,tls" 2>/dev/null | head -40 || true
fi
exit ${RESULT:-0}
