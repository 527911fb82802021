#!/usr/bin/env bash
# Kubernetes for Tortie's tests, built here from Debian's archive, offline:
# no Go module proxy and no image registry are needed.
#
#   scripts/k8s.sh build    once per machine (cached in $TORTIE_K8S, ~15-20 min
#                           cold on 2 cores): Go 1.15 and the Kubernetes v1.20.2
#                           source from Debian, then kube-apiserver,
#                           kube-controller-manager, kube-scheduler, kubelet
#                           (and kubectl if the machine has none)
#   scripts/k8s.sh pki      a test CA and the certificates the components use
#   scripts/k8s.sh images   the pause image, compiled from its C source, as a
#                           docker-archive tarball for `ctr images import`
#   scripts/k8s.sh all      the three
#   scripts/k8s.sh check    exits 0 when everything above is in the cache
#
# Why v1.20.2: it is the newest Kubernetes whose whole source tree (with
# vendor/) Debian ships (bookworm's source package
# kubernetes=1.20.5+really1.20.2-1.1+deb12u1); newer ones need the Go module
# proxy. It builds with Go 1.15 (bullseye's golang-1.15-go and -src,
# unpacked, not installed); newer Go refuses the tree. The generated OpenAPI
# file is not in the tarball: `make gen_openapi` makes it first.
#
# The tests start etcd and the control plane themselves, on free ports, from
# these binaries (tortie_testkit::k8s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${TORTIE_K8S:=/var/cache/tortie-k8s}"
C=$TORTIE_K8S
BIN=$C/bin
PKI=$C/pki
IMAGES=$C/images
KDEB=1.20.5+really1.20.2-1.1+deb12u1
KVERSION=v1.20.2
KSRC=$C/src/kubernetes-1.20.2
GOROOT115=$C/go115/usr/lib/go-1.15
APT=$C/apt
APT_OPTS=(-o "Dir::Etc::sourcelist=$APT/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::lists=$APT/lists" -o "Dir::Cache::archives=$APT/archives"
          -o APT::Sandbox::User=root)
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet"
log() { echo "k8s: $*" >&2; }

packages() {
  local need=(etcd-server containerd runc containernetworking-plugins busybox-static rsync
              openssl gcc libc6-dev make python3 ca-certificates)
  local missing=()
  for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Go 1.15 and the Kubernetes source, through a private apt configuration
# (the machine's own sources are not touched).
sources() {
  mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$C/src"
  if [ ! -x "$GOROOT115/bin/go" ] || [ ! -f "$KSRC/go.mod" ]; then
    local mirror
    # The mirror the machine's apt uses (the first that is not security's).
    mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
               | grep -oE '^(URIs:|deb) +[a-z]+://[^ ]+' | awk '{print $2}' | grep -v security \
               | head -n 1 || true)
    [ -n "$mirror" ] || { log "no Debian mirror in the apt sources"; exit 1; }
    printf 'deb-src %s bookworm main\ndeb %s bullseye main\n' "$mirror" "$mirror" > "$APT/sources.list"
    apt-get "${APT_OPTS[@]}" update -qq
  fi
  if [ ! -x "$GOROOT115/bin/go" ]; then
    (cd "$APT/archives" && apt-get "${APT_OPTS[@]}" download golang-1.15-go golang-1.15-src >/dev/null)
    for f in "$APT"/archives/golang-1.15-*.deb; do dpkg -x "$f" "$C/go115"; done
  fi
  if [ ! -f "$KSRC/go.mod" ]; then
    (cd "$C/src" && apt-get "${APT_OPTS[@]}" source --download-only "kubernetes=$KDEB" >/dev/null \
       && tar xzf kubernetes_*.orig.tar.gz)
  fi
}

build() (
  packages
  local todo=""
  for c in $COMPONENTS; do [ -x "$BIN/$c" ] || todo="$todo $c"; done
  command -v kubectl >/dev/null || [ -x "$BIN/kubectl" ] || todo="$todo kubectl"
  [ -n "$todo" ] || return 0
  sources
  export GOROOT=$GOROOT115 PATH=$GOROOT115/bin:$PATH GOPATH=$C/gopath GOCACHE=$C/gocache
  export GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=0
  mkdir -p "$BIN"
  cd "$KSRC"
  if [ ! -s pkg/generated/openapi/zz_generated.openapi.go ]; then
    log "generating the OpenAPI definitions"
    # A failed run leaves an empty openapi-gen behind: start clean.
    rm -rf _output .make
    (unset GOFLAGS GO111MODULE; nice -n 19 make gen_openapi > "$C/gen-openapi.log" 2>&1) \
      || { tail -n 20 "$C/gen-openapi.log"; exit 1; }
  fi
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$KVERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
  done
  for c in $todo; do
    local t0
    t0=$(date +%s)
    GO111MODULE=on GOFLAGS=-mod=vendor nice -n 19 go build -p 2 -ldflags "$ldflags" -o "$BIN/$c.part" "./cmd/$c"
    mv "$BIN/$c.part" "$BIN/$c"
    log "built $c in $(( $(date +%s) - t0 )) s"
  done
)

# One CA; the apiserver's serving certificate (loopback and the in-cluster
# names), client certificates for an administrator, the controller manager,
# the scheduler, the apiserver's calls to kubelets, and kubelets (one per
# node name given in TORTIE_K8S_NODES); the service account key pair.
pki() (
  mkdir -p "$PKI"
  cd "$PKI"
  if [ ! -f ca.crt ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=tortie-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=admin" clientAuth
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  for n in ${TORTIE_K8S_NODES:-}; do
    cert "node-$n" "/O=system:nodes/CN=system:node:$n" clientAuth
    cert "kubelet-$n" "/CN=$n" serverAuth "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:$n"
  done
)

# cert NAME SUBJECT USAGE [EXTENSION]: a key and a certificate signed by the CA.
cert() {
  [ -f "$1.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s\n' \
    "$3" "${4:-}" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

images() {
  packages
  mkdir -p "$IMAGES/pause-root"
  [ -f "$IMAGES/pause.tar" ] && return 0
  sources
  gcc -Os -static -o "$IMAGES/pause-root/pause" "$KSRC/build/pause/linux/pause.c" -DVERSION=v3.2-tortie
  strip "$IMAGES/pause-root/pause"
  python3 "$HERE/mkimage.py" "$IMAGES/pause.tar" localhost/pause:tortie "$IMAGES/pause-root" /pause
}

check() {
  for c in $COMPONENTS; do [ -x "$BIN/$c" ] || { log "missing $BIN/$c"; return 1; }; done
  [ -f "$PKI/admin.crt" ] || { log "missing $PKI (scripts/k8s.sh pki)"; return 1; }
  [ -f "$IMAGES/pause.tar" ] || { log "missing the pause image (scripts/k8s.sh images)"; return 1; }
}

case "${1:-}" in
  build) build ;;
  pki) packages; pki ;;
  images) images ;;
  all) build; pki; images ;;
  check) check ;;
  *) echo "usage: $0 build|pki|images|all|check   (cache: \$TORTIE_K8S, default /var/cache/tortie-k8s)" >&2; exit 2 ;;
esac
