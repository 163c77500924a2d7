#!/usr/bin/env bash
# Finds Kubernetes v1.20.2 binaries (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet)
# for the test cluster and prints the directory that holds them. Looks, in order:
#   1. $KUBE_BIN_DIR                      (a user's own binaries; only their version is checked)
#   2. ../shared/kube-bin/*.xz            (unpacked into .cache/kube-bin, checked against kube-bin.sha256)
#   3. Debian's kubernetes source package (built into .cache/kube-bin; about 7 minutes on 2 cores)
# kubectl v1.20.2 comes from Debian's kubernetes-client package, unpacked beside them (not installed,
# so it never replaces a kubectl the host already has). etcd is Debian's etcd-server, installed if missing.
# Everything but the final directory goes to stderr, so callers can do: dir=$(test/cluster/kube-bin.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="${NODEMEDIC_CACHE:-$repo/.cache}/kube-bin"
shared="${NODEMEDIC_SHARED_KUBE_BIN:-$repo/../shared/kube-bin}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
want_version=v1.20.2
debian_version=1.20.5+really1.20.2-1.1+deb12u1

log() { echo "kube-bin: $*" >&2; }

ensure_kubectl() { # dir
  [ -x "$1/kubectl" ] && "$1/kubectl" version --client 2>/dev/null | grep -q "$want_version" && return 0
  local tmp
  tmp=$(mktemp -d)
  chmod 0755 "$tmp" && chown _apt "$tmp" 2>/dev/null || true # apt downloads as the _apt user
  (cd "$tmp" && apt-get download -qq "kubernetes-client=$debian_version" >&2 ||
    { apt-get update -qq >&2 && apt-get download -qq "kubernetes-client=$debian_version" >&2; })
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$tmp/root"
  install -m 0755 "$tmp/root/usr/bin/kubectl" "$1/kubectl"
  rm -rf "$tmp"
}

ensure_etcd() {
  command -v etcd >/dev/null && return 0
  log "installing Debian's etcd-server"
  { apt-get install -y -qq etcd-server || { apt-get update -qq && apt-get install -y -qq etcd-server; }; } >&2
}

done_in() { # dir: print it and stop
  ensure_kubectl "$1"
  ensure_etcd
  echo "$1"
  exit 0
}

has_version() { # dir: every binary exists and reports v1.20.2
  local b
  for b in "${binaries[@]}"; do
    [ -x "$1/$b" ] || return 1
    "$1/$b" --version 2>/dev/null | grep -q "$want_version" || return 1
  done
}

checksums_match() { # dir
  (cd "$1" && sha256sum --quiet --check "$here/kube-bin.sha256" >/dev/null 2>&1)
}

if [ -n "${KUBE_BIN_DIR:-}" ]; then
  has_version "$KUBE_BIN_DIR" || { log "KUBE_BIN_DIR=$KUBE_BIN_DIR lacks one of ${binaries[*]} at $want_version"; exit 1; }
  [ -x "$KUBE_BIN_DIR/kubectl" ] || ensure_kubectl "$KUBE_BIN_DIR"
  ensure_etcd
  echo "$KUBE_BIN_DIR"; exit 0
fi

mkdir -p "$cache"
if checksums_match "$cache" || { [ -f "$cache/.built-from-source" ] && has_version "$cache"; }; then
  done_in "$cache"
fi

if [ -f "$shared/kube-apiserver.xz" ]; then
  log "unpacking $shared"
  for b in "${binaries[@]}"; do
    xz -dc "$shared/$b.xz" >"$cache/$b.tmp" && chmod 0755 "$cache/$b.tmp" && mv "$cache/$b.tmp" "$cache/$b"
  done
  if checksums_match "$cache"; then done_in "$cache"; fi
  log "checksums of $shared do not match test/cluster/kube-bin.sha256; building from source instead"
fi

# --- build from Debian's source package ---
log "building $want_version from Debian's kubernetes $debian_version (needs root for apt)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get source --download-only --print-uris "kubernetes=$debian_version" >/dev/null 2>&1; then
  # Enable source packages from the same mirrors the machine already uses for binaries.
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    >/etc/apt/sources.list.d/nodemedic-deb-src.sources
  apt-get update -qq >&2
fi
apt-get install -y -qq golang-go dpkg-dev rsync golang-github-modern-go-reflect2-dev >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only "kubernetes=$debian_version" >&2 && dpkg-source -x kubernetes_*.dsc src >&2)

# Kubernetes 1.20 vendors reflect2 v1.0.1, whose map iteration crashes (SIGSEGV in mapiterinit) when built
# with Go >= 1.18. v1.0.2 fixed it; Debian packages v1.0.2, so put its source in the vendored copy's place.
vendored="$work/src/vendor/github.com/modern-go/reflect2"
rm -rf "$vendored" && mkdir -p "$vendored"
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$vendored/"
rm -f "$vendored"/*_test.go

mkdir -p "$work/gopath/src/k8s.io"
ln -s "$work/src" "$work/gopath/src/k8s.io/kubernetes"
(cd "$work/gopath/src/k8s.io/kubernetes" && GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 \
  KUBE_GIT_VERSION="$want_version" KUBE_GIT_TREE_STATE=clean \
  make WHAT="cmd/kube-apiserver cmd/kubelet cmd/kube-controller-manager cmd/kube-scheduler" >&2)
for b in "${binaries[@]}"; do
  install -m 0755 "$work/src/_output/bin/$b" "$cache/$b"
done
touch "$cache/.built-from-source"
has_version "$cache" || { log "the build did not produce $want_version binaries"; exit 1; }
done_in "$cache"
