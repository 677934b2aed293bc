#!/usr/bin/env bash
# bench-nixcache.sh: a NixOS-generation install whose closure comes from ringil-server's Nix cache over
# loopback mutual TLS (ringil's mirror, then nix-store --realise), against, in the same run: the SHA-256
# limit (`openssl speed -evp sha256`), Nix alone copying the same closure from a local file:// cache
# (`nix copy --from file://`, no network, no TLS), and curl fetching the same NAR files from the same
# server with the same client certificate. Then an update that changes one path of the closure.
# Usage: bench/bench-nixcache.sh [BUILD] (env: PATHS, MIB_PER_PATH).
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
bin=$PWD/$build
n=${PATHS:-32}
mib=${MIB_PER_PATH:-8}
command -v nix-build >/dev/null || { echo "nix-build not installed (scripts/deps.sh nix_pkgs): skipped"; exit 0; }
work=$(mktemp -d /var/tmp/ringil-bench-nixcache.XXXXXX)
srv_pid=
trap '[[ -n $srv_pid ]] && kill $srv_pid 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
NIXOPT=(--option build-users-group "" --option substituters "")

echo "building two $n-path closures of $mib MiB each (one path differs) in a chroot store under $work"
cat >sys.nix <<EOF
{ tag, changed }:
let
  blob = i: derivation {
    name = "blob-\${toString i}\${if i == 0 then changed else ""}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" "mkdir \$out; head -c $((mib << 20)) /dev/urandom > \$out/data" ];
  };
  blobs = builtins.genList blob $n;
in derivation {
  name = "nixos-system-bench-\${tag}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  inherit blobs;
  args = [ "-c" "mkdir -p \$out/bin; echo \$blobs > \$out/blobs; printf '#!/bin/sh\\\\nexit 0\\\\n' > \$out/bin/switch-to-configuration; chmod +x \$out/bin/switch-to-configuration" ];
}
EOF
p1=$(nix-build --store "$work/build" "${NIXOPT[@]}" --option sandbox-paths "/bin /lib /lib64 /usr" --no-out-link sys.nix \
     --argstr tag 1.0 --argstr changed "" 2>/dev/null | tail -1)
p2=$(nix-build --store "$work/build" "${NIXOPT[@]}" --option sandbox-paths "/bin /lib /lib64 /usr" --no-out-link sys.nix \
     --argstr tag 2.0 --argstr changed "-v2" 2>/dev/null | tail -1)
nix-store --generate-binary-cache-key fleet-1 fleet.sk fleet.pk
nix --extra-experimental-features nix-command --store "$work/build" store sign -r --key-file fleet.sk "$p1" "$p2"
nix --extra-experimental-features nix-command --store "$work/build" copy --to "file://$work/cache?compression=none" "$p1" "$p2"
# The NAR files of 1.0's closure (what a fresh drone fetches).
nars=()
for p in $(nix-store --store "$work/build" -qR "$p1"); do
    h=${p#/nix/store/}
    nars+=("$(sed -n 's/^URL: //p' "cache/${h%%-*}.narinfo")")
done
bytes=$(cd cache && cat "${nars[@]}" | wc -c)

echo "PKI, ringil-server with nix-cache, an enrolled drone"
"$bin/ringil/ringil" ca create --dir ca >/dev/null
"$bin/ringil/ringil" ca issue --dir ca --name 127.0.0.1 --server --out-dir srv >/dev/null
"$bin/ringil/ringil" ca issue --dir ca --name alice --operator --out-dir op >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout db.key -out db.pem -days 30 -subj "/CN=bench db" 2>/dev/null
cat >server.conf <<EOF
listen = 127.0.0.1:0
db = $work/fleet.db
store = $work/store
cert = $work/srv/127.0.0.1.pem
key = $work/srv/127.0.0.1.key
device-ca = $work/ca
keyring = $work/db.pem
nix-cache = $work/cache
EOF
coproc SRV { exec "$bin/ringil-server/ringil-server" serve --config server.conf 2>server.log; }
srv_pid=$SRV_PID
read -r line <&"${SRV[0]}"
port=${line##*:}
url=https://127.0.0.1:$port
export RINGIL_FLEET_SERVER=$url RINGIL_FLEET_CA=$work/ca/ca.pem RINGIL_FLEET_CERT=$work/op/alice.pem RINGIL_FLEET_KEY=$work/op/alice.key
token=$("$bin/ringil-server/ringil-server" enroll bench-drone)
mkdir -p agent esp state
cat >ringild.conf <<EOF
server = $url
ca = $work/ca/ca.pem
cert = $work/agent/cert.pem
key = $work/agent/key.pem
device-config = $work/device.conf
state-dir = $work/agent/state
ringil = $bin/ringil/ringil
reboot-command = true
EOF
"$bin/ringild/ringild" enroll --config ringild.conf --id bench-drone --token "$token" >/dev/null
cat >device.conf <<EOF
[device]
compatible = bench
keyring = $work/db.pem
esp = $work/esp
state-dir = $work/state

[nix]
profile = $work/profiles/system
store = $work/drone
current-system = $work/current-system
trusted-public-keys = $(cat fleet.pk)
tls-ca = $work/ca/ca.pem
tls-cert = $work/agent/cert.pem
tls-key = $work/agent/key.pem
EOF
mkdir -p profiles
for v in 1.0 2.0; do
    p=$([[ $v == 1.0 ]] && echo "$p1" || echo "$p2")
    "$bin/ringil/ringil" bundle create --key db.key --cert db.pem --compatible bench --version $v \
        --payload "system:nixos=$p@$url/nix-cache" --nix-store "$work/build" --output b-$v.rb >/dev/null
done

sha_mbs=$(openssl speed -evp sha256 -bytes 16384 -seconds 2 2>/dev/null | awk '/^sha256/ {gsub("k","",$NF); print $NF / 1000}')
limit=$(calc "$bytes / ($sha_mbs * 1e6)")

t0=$(now)
nix --extra-experimental-features nix-command --store "$work/nixalone" "${NIXOPT[@]}" --option require-sigs true \
    --option trusted-public-keys "$(cat fleet.pk)" copy --from "file://$work/cache" "$p1" 2>/dev/null
t_nix=$(calc "$(now) - $t0")

t0=$(now)
for f in "${nars[@]}"; do
    curl -sS --fail --cacert ca/ca.pem --cert agent/cert.pem --key agent/key.pem -o /dev/null "$url/nix-cache/$f"
done
t_curl_seq=$(calc "$(now) - $t0")

t0=$(now)
RINGIL_LOG_LEVEL=debug "$bin/ringil/ringil" install -c device.conf b-1.0.rb 2>install1.log >/dev/null
t_ringil=$(calc "$(now) - $t0")
t_mirror=$(grep -o '[0-9.]* s$' install1.log | tail -1 | cut -d' ' -f1)
ln -sfn "$(readlink -f profiles/system)" current-system
"$bin/ringil/ringil" mark-good -c device.conf >/dev/null
t0=$(now)
RINGIL_LOG_LEVEL=debug "$bin/ringil/ringil" install -c device.conf b-2.0.rb 2>install2.log >/dev/null
t_update=$(calc "$(now) - $t0")
upd=$(grep -o 'nix cache .*' install2.log | tail -1)

mb=$(calc "$bytes / 1048576")
printf '\nclosure 1.0: %d paths, %.0f MiB of NAR (compression none); SHA-256 limit %.0f MB/s\n' $((n + 1)) "$mb" "$sha_mbs"
printf '%-58s %8s %10s\n' "" "seconds" "x limit"
printf '%-58s %8.3f %10.2f\n' "SHA-256 of those bytes (limit)" "$limit" 1
printf '%-58s %8.3f %10.2f\n' "nix copy --from file:// (Nix alone, local disk, no TLS)" "$t_nix" "$(calc "$limit / $t_nix")"
printf '%-58s %8.3f %10.2f\n' "curl, same NARs from ringil-server, one by one (mTLS)" "$t_curl_seq" "$(calc "$limit / $t_curl_seq")"
printf '%-58s %8.3f %10.2f\n' "ringil mirror step (fetch, verify sigs and FileHash)" "$t_mirror" "$(calc "$limit / $t_mirror")"
printf '%-58s %8.3f %10.2f\n' "ringil install 1.0 total (mirror + realise + activate)" "$t_ringil" "$(calc "$limit / $t_ringil")"
printf '%-58s %8.3f\n' "ringil install 2.0 (one changed path)" "$t_update"
echo "update: $upd"
