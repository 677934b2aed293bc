#!/usr/bin/env bash
# bench-fleet.sh: ringil-server check-ins/s and p99 over mTLS keep-alive, bundle download throughput to
# 10 concurrent drones, ringild idle RSS, stripped binary sizes. Usage: bench/bench-fleet.sh [BUILD]
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
R=$build/ringil/ringil S=$build/ringil-server/ringil-server D=$build/ringild/ringild
CONNS=${FLEET_BENCH_CONNS:-32} SECS=${FLEET_BENCH_SECONDS:-5}
W=$(mktemp -d /tmp/ringil-bench-fleet.XXXXXX)
SPID= APID=
cleanup() {
    [[ -n $APID ]] && kill "$APID" 2>/dev/null || true
    [[ -n $SPID ]] && kill "$SPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

cc -O2 -o "$W/fleet-load" bench/fleet-load.c -lcurl
$R ca create --dir "$W/ca" >/dev/null
$R ca issue --dir "$W/ca" --name 127.0.0.1 --server --out-dir "$W/srv" >/dev/null
$R ca issue --dir "$W/ca" --name alice --operator --out-dir "$W/op" >/dev/null
$R ca issue --dir "$W/ca" --name drone-bench --out-dir "$W/drone" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/sign.key" -out "$W/sign.pem" \
    -subj /CN=bench-signer -days 2 -addext extendedKeyUsage=codeSigning 2>/dev/null
cat > "$W/server.conf" <<EOF
listen = 127.0.0.1:0
db = $W/fleet.db
store = $W/store
cert = $W/srv/127.0.0.1.pem
key = $W/srv/127.0.0.1.key
device-ca = $W/ca
keyring = $W/sign.pem
EOF
$S serve --config "$W/server.conf" > "$W/srv.out" 2> "$W/srv.err" &
SPID=$!
for _ in $(seq 50); do grep -q listening "$W/srv.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$W/srv.out")
URL=https://127.0.0.1:$PORT
export RINGIL_FLEET_SERVER=$URL RINGIL_FLEET_CA=$W/ca/ca.pem RINGIL_FLEET_CERT=$W/op/alice.pem RINGIL_FLEET_KEY=$W/op/alice.key
$S enroll drone-bench >/dev/null   # registered; its certificate came from `ringil ca issue`

# agent idle RSS: one check-in, then asleep until the next poll
cat > "$W/ringild.conf" <<EOF
server = $URL
ca = $W/ca/ca.pem
cert = $W/drone/drone-bench.pem
key = $W/drone/drone-bench.key
state-dir = $W/agent
ringil = /bin/false
poll-interval = 3600
EOF
$D --config "$W/ringild.conf" 2>/dev/null &
APID=$!
sleep 2
rss=$(awk '/VmRSS/ {print $2}' /proc/$APID/status)
pss=$(awk '/^Pss:/ {print $2}' /proc/$APID/smaps_rollup)
priv=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' /proc/$APID/smaps_rollup)
kill $APID; wait $APID 2>/dev/null || true
APID=
echo "ringild idle: RSS ${rss} KiB, PSS ${pss} KiB, private ${priv} KiB"

echo "check-ins over mTLS keep-alive ($CONNS connections, ${SECS}s):"
"$W/fleet-load" "$URL" "$W/ca/ca.pem" "$W/drone/drone-bench.pem" "$W/drone/drone-bench.key" checkin "$CONNS" "$SECS" /api/v1/checkin

head -c $((32 << 20)) /dev/urandom > "$W/img"
$R bundle create --key "$W/sign.key" --cert "$W/sign.pem" --compatible bench --version 2.0 \
    --payload rootfs:raw="$W/img" --output "$W/b.bundle" >/dev/null
rid=$($S upload "$W/b.bundle")
$S release "$rid" --fleet >/dev/null
echo "bundle download, 10 concurrent drones, 32 MiB bundle (${SECS}s):"
"$W/fleet-load" "$URL" "$W/ca/ca.pem" "$W/drone/drone-bench.pem" "$W/drone/drone-bench.key" download 10 "$SECS" "/api/v1/releases/$rid/bundle"

echo "stripped sizes:"
for b in "$D" "$S" "$R"; do
    strip -o "$W/stripped" "$b"
    printf '  %-14s %s bytes\n' "$(basename "$b")" "$(stat -c %s "$W/stripped")"
done
