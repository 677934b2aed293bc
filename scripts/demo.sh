#!/usr/bin/env bash
# demo.sh: ringil's main job on its embedded default, in a scratch directory; says what it does.
set -euo pipefail
build=${1:-build}
ringil="$PWD/$build/ringil/ringil"
work=$(mktemp -d /tmp/ringil-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "ringil $("$ringil" --version | cut -d' ' -f2-)"
"$ringil" --help | sed -n '1,12p'
echo
echo "demo: done (scratch dir $work removed)"
