#!/usr/bin/env bash
# Builds the test node's deadlocking container shim and prints the directory that holds it (as
# containerd-shim-runc-v2, which the test node puts first on containerd's PATH). The shim is Debian's
# containerd 1.6.20 — the version the test node runs — with reaper-lock-order.patch, a test-only patch
# that restores containerd 1.2's Reap (fixed upstream by containerd PR 3529). It is never shipped.
#   - the source is Debian's containerd source package, checked against source.sha256;
#   - Go and the Go libraries are Debian's (golang-go, `apt-get build-dep containerd`), installed if missing;
#   - the binary is built once per source and patch, into a cache outside the checkout
#     ($NODEMEDIC_SHIM_CACHE, default /var/cache/nodemedic/deadlock-shim/KEY), so CI builds it once per
#     machine (about 15 s on 2 cores, after the first install of the build dependencies).
# Everything but the final directory goes to stderr: dir=$(test/node/deadlock-shim/build.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=1.6.20~ds1-1+deb12u3
key=$(cat "$here/source.sha256" "$here/reaper-lock-order.patch" "$here/build.sh" | sha256sum | cut -c1-16)
out="${NODEMEDIC_SHIM_CACHE:-/var/cache/nodemedic/deadlock-shim}/$key"
log() { echo "deadlock-shim: $*" >&2; }

if [ -x "$out/containerd-shim-runc-v2" ]; then
  echo "$out"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# apt-get build-dep and apt-get source need Debian's source indexes. A machine whose apt lists only
# binary packages gets them, from the same mirrors, in a file of its own.
if ! grep -Eqs '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
  log "adding Debian's source indexes (deb-src) beside the binary ones"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >/etc/apt/sources.list.d/nodemedic-deb-src.sources
  else
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/nodemedic-deb-src.list
  fi
  apt-get update -qq >&2
fi
if ! command -v go >/dev/null || ! apt-get build-dep -s containerd 2>/dev/null | grep -q '^0 upgraded, 0 newly installed'; then
  log "installing Go and containerd's build dependencies (Debian packages)"
  { apt-get build-dep -y -qq containerd || { apt-get update -qq && apt-get build-dep -y -qq containerd; }; } >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work" && chown _apt "$work" 2>/dev/null || true # apt downloads as the _apt user
log "fetching Debian's containerd $version source package"
(cd "$work" && apt-get source -qq --download-only "containerd=$version" >&2)
(cd "$work" && sha256sum --quiet -c "$here/source.sha256" >&2)
dpkg-source -x "$work/containerd_$version.dsc" "$work/src" >/dev/null # applies Debian's own patches
rm -rf "$work/src/debian"
gopath="$work/gopath"
mkdir -p "$gopath/src/github.com/containerd"
mv "$work/src" "$gopath/src/github.com/containerd/containerd"
(cd "$gopath/src/github.com/containerd/containerd" && patch -s -p1 <"$here/reaper-lock-order.patch")
log "building containerd-shim-runc-v2 with the patch"
mkdir -p "$out.tmp"
(cd "$gopath/src/github.com/containerd/containerd" &&
  GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOCACHE="$work/gocache" \
    go build -trimpath -o "$out.tmp/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2 >&2)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
