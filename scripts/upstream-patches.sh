#!/usr/bin/env bash
# Checks that vendor/upstream/*.patch, applied in order to rmqtt's published sources, give exactly
# the forks this workspace builds (vendor/rmqtt*/src, broker/src/cluster/broadcast/), so the
# patches offered upstream are the code that is tested here. vendor/upstream/local/*.patch (the
# broker module's own layout, not for upstream) apply after them. The published sources are the
# first commit of each vendored folder (each was committed unchanged from crates.io before its
# fixes).
set -euo pipefail
cd "$(dirname "$0")/.."

# folder in this repository (at its first, unchanged commit) -> folder in rmqtt's repository
first_commit() { git log --diff-filter=A --format=%H -- "$1" | tail -1; }
declare -A UPSTREAM=(
  [vendor/rmqtt/src]=rmqtt/src
  [vendor/rmqtt-codec/src]=rmqtt-codec/src
  [vendor/rmqtt-net/src]=rmqtt-net/src
  [vendor/rmqtt-cluster-broadcast/src]=rmqtt-plugins/rmqtt-cluster-broadcast/src
)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
git -C "$tree" init -q
for src in "${!UPSTREAM[@]}"; do
  rev=$(first_commit "$src/lib.rs")
  [ -n "$rev" ] || { echo "no commit adds $src (a shallow clone?)" >&2; exit 1; }
  mkdir -p "$tree/${UPSTREAM[$src]}"
  git archive "$rev" "$src" | tar -x -C "$tree/${UPSTREAM[$src]}" --strip-components=$(($(tr -cd / <<<"$src" | wc -c) + 1))
done
for p in vendor/upstream/*.patch; do
  git -C "$tree" apply --whitespace=nowarn "$PWD/$p" || { echo "$p does not apply" >&2; exit 1; }
done
status=0
for src in vendor/rmqtt/src vendor/rmqtt-codec/src vendor/rmqtt-net/src; do
  diff -r "$tree/${UPSTREAM[$src]}" "$src" >/dev/null || { echo "$src differs from upstream + patches" >&2; status=1; }
done
# The cluster plugin is a module of the broker: its lib.rs is mod.rs, and handler.rs names its
# sibling `super::message` where upstream's crate root says `crate::message`.
plugin=$tree/rmqtt-plugins/rmqtt-cluster-broadcast/src
mv "$plugin/lib.rs" "$plugin/mod.rs"
sed -i 's/use crate::message::/use super::message::/' "$plugin/handler.rs"
# The broker's own layout of the module, kept here and not offered upstream (vendor/upstream/local/).
for p in vendor/upstream/local/*.patch; do
  git -C "$tree" apply --whitespace=nowarn --directory=rmqtt-plugins/rmqtt-cluster-broadcast/src "$PWD/$p" \
    || { echo "$p does not apply" >&2; exit 1; }
done
for f in "$plugin"/*.rs; do
  cmp -s "$f" "broker/src/cluster/broadcast/$(basename "$f")" || { echo "broker/src/cluster/broadcast/$(basename "$f") differs from upstream + patches" >&2; status=1; }
done
for f in broker/src/cluster/broadcast/*.rs; do
  [ -e "$plugin/$(basename "$f")" ] || { echo "$f is in no patch" >&2; status=1; }
done
[ "$status" = 0 ] && echo "vendor/upstream: $(ls vendor/upstream/*.patch | wc -l) patches (and $(ls vendor/upstream/local/*.patch | wc -l) local) give the forks exactly"
exit "$status"
