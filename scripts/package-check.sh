#!/usr/bin/env bash
# Proves the registry install path: the root package plus the host's prebuilt
# platform package install into an empty folder and load with no Rust at all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/.package-check
rm -rf "$work"
mkdir -p "$work/artifacts" "$work/packs" "$work/app"

binary=$(ls dnsnat.*.node 2>/dev/null | head -1 || true)
[ -n "$binary" ] || { echo "package-check: no dnsnat.*.node at the package root; run 'npm run build' first" >&2; exit 1; }
[ -f dist/index.js ] || { echo "package-check: dist/ is missing; run 'npm run build' first" >&2; exit 1; }
platform=${binary#dnsnat.}; platform=${platform%.node}
cp "$binary" "$work/artifacts/"

# The host's platform package as `napi pre-publish` would publish it. A CI job
# per target builds the others; here only the host's binary exists, so the napi
# config is narrowed to the host's triple (as the addon itself reports it).
triple=$(node -p "require('./index.js').buildInfo().target")
node -e "
  const c = require('./package.json').napi;
  require('fs').writeFileSync('.package-check/napi.json', JSON.stringify({ ...c, targets: ['$triple'] }));
"
npx --no-install napi create-npm-dirs -c .package-check/napi.json --npm-dir .package-check/npm >/dev/null
npx --no-install napi artifacts -c .package-check/napi.json --output-dir .package-check/artifacts --npm-dir .package-check/npm >/dev/null
[ -f "$work/npm/$platform/$binary" ] || { echo "package-check: napi artifacts did not place $binary in npm/$platform" >&2; exit 1; }

# --ignore-scripts: the build already ran; packing must not rebuild.
(cd "$work/npm/$platform" && npm pack --silent --pack-destination "$work/packs" >/dev/null)
npm pack --silent --ignore-scripts --pack-destination "$work/packs" >/dev/null
root_tgz=$(ls "$work"/packs/dnsnat-[0-9]*.tgz)
plat_tgz=$(ls "$work"/packs/dnsnat-"$platform"-*.tgz)
if tar -tzf "$root_tgz" | grep -q '\.node$'; then
  echo "package-check: the root tarball must not carry a native binary" >&2; exit 1
fi

# An environment without Rust: cargo and rustc are not on PATH.
nocargo_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -e '\.cargo/bin' -e 'rustup' | paste -sd: -)
if PATH=$nocargo_path command -v cargo >/dev/null; then
  echo "package-check: cannot hide cargo from PATH ($(PATH=$nocargo_path command -v cargo))" >&2; exit 1
fi

cd "$work/app"
printf '{"name":"dnsnat-package-check","version":"0.0.0","private":true}\n' > package.json
PATH=$nocargo_path npm install --silent --no-audit --no-fund "$root_tgz" "$plat_tgz" >/dev/null
PATH=$nocargo_path node -e "
  const d = require('dnsnat');
  const v = d.versionReport();
  if (v.package !== v.native.version) throw new Error('version mismatch ' + JSON.stringify(v));
  d.runtimeInfo(1).then((r) => { if (r.threadName !== 'dnsnat-rt') throw new Error('not on the runtime'); });
"
loaded=$(PATH=$nocargo_path node -e "console.log(require.resolve('dnsnat-$platform'))")
out=$(PATH=$nocargo_path npx --no-install dnsnat --version)
echo "$out" | grep -q "^dnsnat $(node -p "require('$root/package.json').version") " || { echo "package-check: unexpected --version output: $out" >&2; exit 1; }
echo "package-check: ok: $(basename "$root_tgz") + $(basename "$plat_tgz") installed without cargo; loaded $loaded"
echo "package-check: $out"
