#!/usr/bin/env bash
# bench-fleet.sh: ringil-server check-ins/s and p99 over mTLS keep-alive with many drone identities,
# nginx (mTLS, `return 200`) as the ceiling in the same run, page faults and TLB shootdowns per check-in
# (the regression that once cost 85 % of the server's time), 10,000 idle mTLS connections held (RSS per
# connection), a new TLS connection per check-in, bundle download to 10 drones, ringild idle RSS and
# binary sizes; and the store: SQLite vs PostgreSQL with one and with two replicas, check-ins alone and with
# durable reports, in the same run, with the CPU each of server and database spends per request.
# Usage: bench/bench-fleet.sh [BUILD]   (loopback only; 3-6 minutes)
# Environment: FLEET_BENCH_CONNS (32), _SECONDS (5), _IDENTITIES (1000), _IDLE (10000; 0 skips it),
# _PG (1; 0 skips the PostgreSQL comparison).
set -euo pipefail
build=$(realpath "${1:-build}")
cd "$(dirname "$0")/.."
R=$build/ringil/ringil S=$build/ringil-server/ringil-server D=$build/ringild/ringild L=$build/bench/fleet-load
CONNS=${FLEET_BENCH_CONNS:-32} SECS=${FLEET_BENCH_SECONDS:-5} IDS=${FLEET_BENCH_IDENTITIES:-1000}
IDLE=${FLEET_BENCH_IDLE:-10000}
W=$(mktemp -d /tmp/ringil-bench-fleet.XXXXXX)
SPID= APID= NPID= PGD= RPIDS=()
PGBIN=/usr/lib/postgresql/15/bin
cleanup() {
    [[ -n $APID ]] && kill "$APID" 2>/dev/null || true
    [[ -n $SPID ]] && kill "$SPID" 2>/dev/null || true
    [[ -n $NPID ]] && kill "$NPID" 2>/dev/null || true
    for p in "${RPIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n $PGD ]]; then
        "${ASUSER[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PGD"
    fi
    rm -rf "$W"
}
ASUSER=()
[[ $(id -u) -eq 0 ]] && ASUSER=(runuser -u nobody --)   # PostgreSQL refuses to run as root
trap cleanup EXIT
[[ -x $L ]] || { echo "bench-fleet: $L not built" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

echo "conditions: $(nproc) cores, $(uptime | sed 's/.*load average/load average/'), $(date -u +%FT%TZ)"
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
max-connections = $((IDLE + 2000))
keepalive-timeout = 600
EOF
$S serve --config "$W/server.conf" > "$W/srv.out" 2> "$W/srv.err" &
SPID=$!
for _ in $(seq 50); do grep -q listening "$W/srv.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$W/srv.out")
URL=https://127.0.0.1:$PORT
export RINGIL_FLEET_SERVER=$URL RINGIL_FLEET_CA=$W/ca/ca.pem RINGIL_FLEET_CERT=$W/op/alice.pem RINGIL_FLEET_KEY=$W/op/alice.key
$S enroll drone-bench >/dev/null   # registered; its certificate came from `ringil ca issue`
LOAD=("$L" checkin --url "$URL" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS")

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
minflt() { awk '{print $10}' "/proc/$1/stat"; }
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
tlb() { awk '/TLB shootdowns/ {s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s}' /proc/interrupts; }

# ---- nginx: the ceiling for the same client, certificates and answer ----
NGINX=$(command -v nginx || true)
if [[ -n $NGINX ]]; then
    NPORT=$((PORT + 1))
    mkdir -p "$W/nginx"
    cat > "$W/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body; proxy_temp_path $W/nginx/proxy; fastcgi_temp_path $W/nginx/fcgi;
    uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NPORT ssl;
        ssl_certificate $W/srv/127.0.0.1.pem;
        ssl_certificate_key $W/srv/127.0.0.1.key;
        ssl_client_certificate $W/ca/ca.pem;
        ssl_verify_client on;
        ssl_session_cache off;
        ssl_session_tickets off;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
        location / { default_type application/json; return 200 '{"poll_interval":300,"assignment":null}'; }
    }
}
EOF
    "$NGINX" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" -g 'daemon off;' 2>/dev/null &
    NPID=$!
    sleep 0.5
fi

echo "registering $IDS drone identities (operator API)"
"$L" checkin --url "$URL" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS" \
    --operator "$W/op/alice.pem:$W/op/alice.key" --conns 1 --seconds 1 >/dev/null

echo "check-ins, $CONNS mTLS keep-alive connections, $IDS identities (each connection moves to the next identity every 200), ${SECS}s x 2, alternating:"
hz=$(getconf CLK_TCK)
for round in 1 2; do
    f0=$(minflt $SPID) t0=$(tlb) c0=$(cpu $SPID)
    out=$("${LOAD[@]}" --conns "$CONNS" --seconds "$SECS" --rotate 200)
    f1=$(minflt $SPID) t1=$(tlb) c1=$(cpu $SPID)
    n=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' <<<"$out")
    echo "  ringil-server: $out"
    awk -v f=$((f1 - f0)) -v t=$((t1 - t0)) -v c=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {
        printf "  ringil-server: %.0f us of server CPU, %.3f page faults, %.3f TLB shootdowns per check-in%s\n",
               c * 1e6 / hz / n, f / n, t / n,
               (f / n > 0.5 || t / n > 0.5) ? "   <-- REGRESSION: per-request memory mapping is back" : "" }'
    if [[ -n $NGINX ]]; then
        np=($NPID $(pgrep -P "$NPID" || true))
        c0=$(cpu "${np[@]}")
        out=$("$L" checkin --url "https://127.0.0.1:$NPORT" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS" \
            --conns "$CONNS" --seconds "$SECS" --rotate 200)
        c1=$(cpu "${np[@]}")
        n=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' <<<"$out")
        echo "  nginx (mTLS, return 200, $(nproc) workers): $out"
        awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "  nginx: %.0f us of server CPU per request\n", c * 1e6 / hz / n }'
    fi
done
echo "  server RSS after the check-ins: $(rss $SPID) KiB"

echo "check-ins with ringild's compliance report, $CONNS connections, ${SECS}s each:"
for report in full digest; do
    f0=$(minflt $SPID) c0=$(cpu $SPID)
    out=$("${LOAD[@]}" --conns "$CONNS" --seconds "$SECS" --rotate 200 --report $report)
    f1=$(minflt $SPID) c1=$(cpu $SPID)
    n=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' <<<"$out")
    [[ $report == full ]] && what="the whole report every time (audit summary, Secure Boot, zone; ~800 bytes)" ||
        what="the report's digest (what ringild sends once the server holds the report)"
    echo "  $what: $out"
    awk -v f=$((f1 - f0)) -v c=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {
        printf "    %.0f us of server CPU, %.3f page faults per check-in\n", c * 1e6 / hz / n, f / n }'
done

echo "a new TLS connection per check-in (a polling drone), 32 at once, ${SECS}s:"
echo "  ringil-server: $("${LOAD[@]}" --conns 32 --seconds "$SECS" --new-conn)"
[[ -n $NGINX ]] && echo "  nginx: $("$L" checkin --url "https://127.0.0.1:$NPORT" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" \
    --identities "$IDS" --conns 32 --seconds "$SECS" --new-conn)"

if [[ $IDLE -gt 0 ]]; then
echo "$IDLE idle mTLS keep-alive connections held (one check-in each, then silence):"
r0=$(rss $SPID)
"$L" idle --url "$URL" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS" --conns "$IDLE" --seconds 300 \
    > "$W/idle.out" &
APID=$!
for _ in $(seq 2900); do grep -q "all opened" "$W/idle.out" && break; sleep 0.1; done
sleep 2
r1=$(rss $SPID)
active=$("$S" metrics | sed -n 's/^ringil_connections_active{listener="fleet"} //p')
kill $APID 2>/dev/null; wait $APID 2>/dev/null || true
APID=
echo "  $(head -1 "$W/idle.out")"
awk -v a="$r0" -v b="$r1" -v n="$active" 'BEGIN {
    printf "  server RSS %d KiB before, %d KiB with %d connections open: %.1f KiB per connection\n", a, b, n, (b - a) / (n > 0 ? n : 1) }'
fi
[[ -n $NPID ]] && kill "$NPID" 2>/dev/null && wait "$NPID" 2>/dev/null; NPID=

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
arss=$(awk '/VmRSS/ {print $2}' /proc/$APID/status)
pss=$(awk '/^Pss:/ {print $2}' /proc/$APID/smaps_rollup)
priv=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' /proc/$APID/smaps_rollup)
kill $APID; wait $APID 2>/dev/null || true
APID=
echo "ringild idle: RSS ${arss} KiB, PSS ${pss} KiB, private ${priv} KiB"

cc -O2 -o "$W/fleet-download" bench/fleet-download.c -lcurl
head -c $((32 << 20)) /dev/urandom > "$W/img"
$R bundle create --key "$W/sign.key" --cert "$W/sign.pem" --compatible bench --version 2.0 \
    --payload rootfs:raw="$W/img" --output "$W/b.bundle" >/dev/null
rid=$($S upload "$W/b.bundle")
$S release "$rid" --fleet >/dev/null
echo "bundle download, 10 concurrent drones, 32 MiB bundle (${SECS}s):"
"$W/fleet-download" "$URL" "$W/ca/ca.pem" "$W/drone/drone-bench.pem" "$W/drone/drone-bench.key" download 10 "$SECS" "/api/v1/releases/$rid/bundle"

# ---- the store: SQLite vs PostgreSQL (one replica, two replicas), same run ----
if [[ ${FLEET_BENCH_PG:-1} != 0 && -x $PGBIN/initdb ]]; then
    PGD=$(mktemp -d /tmp/ringil-bench-pg.XXXXXX)
    chmod 755 "$PGD"
    [[ $(id -u) -eq 0 ]] && chown nobody "$PGD"
    PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${ASUSER[@]}" "$PGBIN/initdb" -D "$PGD/data" -U ringil --auth=trust -E UTF8 --locale=C >/dev/null
    # the defaults but for the socket and the port: fsync on, synchronous_commit on (the server turns it
    # off for heartbeats only)
    "${ASUSER[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGD -c max_connections=100" start >/dev/null
    "$PGBIN/psql" -X -q -h "$PGD" -p "$PGPORT" -U ringil -d postgres -c "CREATE DATABASE bench" >/dev/null
    DBURL="postgresql://ringil@127.0.0.1:$PGPORT/bench"
    PGPID=$(head -1 "$PGD/data/postmaster.pid")
    pgpids() { echo "$PGPID" $(pgrep -P "$PGPID" || true); }
    # replicas: the same config but the database, sharing the store directory
    start_replica() {   # start_replica NAME: sets RPORT, RPID
        sed -e "s|^db = .*|db = $DBURL|" "$W/server.conf" > "$W/$1.conf"
        echo "replica-name = $1" >> "$W/$1.conf"
        $S serve --config "$W/$1.conf" > "$W/$1.out" 2> "$W/$1.err" &
        RPID=$!
        RPIDS+=("$RPID")
        for _ in $(seq 100); do grep -q listening "$W/$1.out" 2>/dev/null && break; sleep 0.1; done
        RPORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$W/$1.out")
    }
    start_replica pg-a
    PA_PORT=$RPORT PA_PID=$RPID
    start_replica pg-b
    PB_PORT=$RPORT PB_PID=$RPID
    "$L" checkin --url "https://127.0.0.1:$PA_PORT" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS" \
        --operator "$W/op/alice.pem:$W/op/alice.key" --conns 1 --seconds 1 >/dev/null
    echo "the store: SQLite (one server) vs PostgreSQL (one replica; two replicas on one database), $CONNS mTLS"
    echo "keep-alive connections, $IDS identities, ${SECS}s each, alternating; 'reports 1/10': every 10th"
    echo "request a durable report (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on, fsync on):"
    for round in 1 2; do
        for mix in checkins reports; do
            extra=()
            [[ $mix == reports ]] && extra=(--reports 10)
            for cfg in sqlite pg-1 pg-2; do
                case $cfg in
                sqlite) url=$URL pids=($SPID) db=() ;;
                pg-1) url=https://127.0.0.1:$PA_PORT pids=($PA_PID) db=($(pgpids)) ;;
                pg-2) url=https://127.0.0.1:$PA_PORT,https://127.0.0.1:$PB_PORT pids=($PA_PID $PB_PID) db=($(pgpids)) ;;
                esac
                c0=$(cpu "${pids[@]}") d0=0
                [[ ${#db[@]} -gt 0 ]] && d0=$(cpu "${db[@]}")
                out=$("$L" checkin --url "$url" --ca "$W/ca/ca.pem" --ca-dir "$W/ca" --identities "$IDS" \
                    --conns "$CONNS" --seconds "$SECS" --rotate 200 "${extra[@]}" || true)
                c1=$(cpu "${pids[@]}") d1=0
                [[ ${#db[@]} -gt 0 ]] && d1=$(cpu "${db[@]}")
                n=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' <<<"$out")
                awk -v cfg="$cfg" -v mix="$mix" -v o="$out" -v c=$((c1 - c0)) -v d=$((d1 - d0)) -v hz="$hz" -v n="${n:-0}" \
                    'BEGIN { split(o, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
                             printf "  round %d %-8s %-6s %6.0f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %s  server %4.0f us/req  database %4.0f us/req\n",
                                    '"$round"', mix == "reports" ? "reports 1/10" : "checkins", cfg, v["rps"], v["p50_ms"], v["p99_ms"],
                                    v["errors"], n ? c * 1e6 / hz / n : 0, n ? d * 1e6 / hz / n : 0 }'
            done
        done
    done
fi

echo "stripped sizes:"
for b in "$D" "$S" "$R"; do
    strip -o "$W/stripped" "$b"
    printf '  %-14s %s bytes\n' "$(basename "$b")" "$(stat -c %s "$W/stripped")"
done
