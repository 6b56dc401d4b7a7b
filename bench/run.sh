#!/usr/bin/env bash
# `npm run bench`: installs the peers dnsnat is compared with (Debian packages), builds the addon if its
# sources changed, and runs bench/run.ts, which writes bench/results/<date>.json and bench/results/latest.md.
# Root: network namespaces and TUN devices. About 10 minutes on two cores. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "npm run bench needs root (network namespaces, TUN devices)" >&2
  exit 1
fi

packages=(wireguard-go wireguard-tools iperf3 dnsmasq-base dnsperf nftables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

# The addon: rebuilt (release) when missing or older than any Rust source or manifest.
addon=dnsnat.linux-x64-gnu.node
if [ ! -f "$addon" ] || [ -n "$(find crates Cargo.toml Cargo.lock -newer "$addon" \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) -not -path '*/fuzz/*' -print -quit)" ]; then
  echo "building the addon"
  npm run build:native
fi

exec npx --no-install tsx bench/run.ts
