#!/usr/bin/env bash
# Builds the test control plane from the Go module proxy: etcd, kube-apiserver,
# kube-controller-manager, kubectl and helm, into ~/.cache/kmq/k8s/<kubernetes version>/bin.
# A binary whose version file matches the pinned version is not built again.
# When KUBEBUILDER_ASSETS holds etcd and kube-apiserver, those two are reused and
# only the rest is built. Versions: scripts/control-plane/versions.env.
#
# Times of a first build on a 2-core machine (modules downloaded, nothing cached
# but a few common modules): etcd 1m10s, kube-apiserver 6m46s, then
# kube-controller-manager 2m14s and kubectl 41s (they share most packages with it),
# helm 3m27s; about 15 min in all. A run with everything cached takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=control-plane/versions.env
source scripts/control-plane/versions.env

CACHE_DIR="$HOME/.cache/kmq/k8s/$KUBERNETES_VERSION"
BIN_DIR="$CACHE_DIR/bin"
SRC_DIR="$CACHE_DIR/src"
mkdir -p "$BIN_DIR" "$SRC_DIR"

fail() {
  echo "setup-control-plane: $*" >&2
  exit 1
}
command -v go >/dev/null || fail "Go is required (go install / go build from the module proxy); none is on PATH"

# go build with the machine's other work in mind: low priority, static, no paths
# of this machine in the binary.
go_build() {
  CGO_ENABLED=0 nice -n 10 go build -trimpath "$@"
}

# cached NAME VERSION: true when BIN_DIR holds NAME built at VERSION.
cached() {
  [ -x "$BIN_DIR/$1" ] && [ "$(cat "$BIN_DIR/$1.version" 2>/dev/null)" = "$2" ]
}

# Moves a finished build into place, then writes its version file, so an
# interrupted build is never taken for a cached one.
install_bin() {
  local name=$1 version=$2 built=$3
  mv -f "$built" "$BIN_DIR/$name"
  echo "$version" > "$BIN_DIR/$name.version"
}

elapsed() {
  local start=$1
  echo "   done in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
}

from_assets() {
  [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]
}

build_etcd() {
  # The etcd server module's go.mod replaces its sibling modules with relative
  # paths, so `go install ...@version` refuses it; a wrapper module requiring the
  # server and its siblings at the same version builds it instead.
  local dir="$SRC_DIR/etcd" start=$SECONDS
  echo "== building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
  rm -rf "$dir" && mkdir -p "$dir"
  cat > "$dir/go.mod" <<MOD
module kmq.dev/control-plane/etcd

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
  (cd "$dir" && go_build -mod=mod -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3) \
    || fail "building etcd $ETCD_VERSION failed (see the go output above)"
  install_bin etcd "$ETCD_VERSION" "$dir/etcd"
  elapsed "$start"
}

# A wrapper module for k8s.io/kubernetes: its go.mod requires the staging modules
# (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with paths in
# its own tree, which a dependent module does not see, so every one of them is
# replaced here with its published version.
prepare_kubernetes_module() {
  local dir="$SRC_DIR/kubernetes"
  [ -f "$dir/go.mod" ] && grep -q "k8s.io/kubernetes $KUBERNETES_VERSION" "$dir/go.mod" && return 0
  echo "== preparing a build module for k8s.io/kubernetes $KUBERNETES_VERSION"
  local upstream
  upstream=$(go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$KUBERNETES_VERSION") \
    || fail "cannot fetch the go.mod of k8s.io/kubernetes@$KUBERNETES_VERSION from the module proxy"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/src/.*#\1#p' "$upstream")
  [ -n "$staging" ] || fail "found no staging modules in $upstream"
  rm -rf "$dir" && mkdir -p "$dir"
  {
    echo "module kmq.dev/control-plane/kubernetes"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    for module in $staging; do
      echo "	$module => $module $KUBERNETES_STAGING_VERSION"
    done
    echo ")"
  } > "$dir/go.mod"
}

kubernetes_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    # No commit id: the module proxy serves sources without history; empty beats the
    # unexpanded "\$Format:%H\$" placeholder of the source tree.
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE -X $pkg.gitCommit="
  done
  echo "$flags"
}

build_kubernetes_binary() {
  local name=$1 dir="$SRC_DIR/kubernetes" start=$SECONDS
  prepare_kubernetes_module
  echo "== building $name $KUBERNETES_VERSION (k8s.io/kubernetes/cmd/$name)"
  (cd "$dir" && go_build -mod=mod -ldflags "$(kubernetes_ldflags)" -o "$dir/$name" "k8s.io/kubernetes/cmd/$name") \
    || fail "building $name $KUBERNETES_VERSION failed (see the go output above)"
  install_bin "$name" "$KUBERNETES_VERSION" "$dir/$name"
  elapsed "$start"
}

build_helm() {
  local dir="$SRC_DIR/helm" start=$SECONDS
  echo "== building helm $HELM_VERSION (helm.sh/helm/v3/cmd/helm)"
  rm -rf "$dir" && mkdir -p "$dir"
  # As helm's Makefile does: its version, and the Kubernetes version that `helm template`
  # and `helm lint` assume without a cluster, taken from the client-go it is built with.
  local gomod client_go minor
  gomod=$(go list -m -f '{{.GoMod}}' "helm.sh/helm/v3@$HELM_VERSION") \
    || fail "cannot fetch the go.mod of helm.sh/helm/v3@$HELM_VERSION from the module proxy"
  client_go=$(sed -n 's#^[[:space:]]*k8s\.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")
  [ -n "$client_go" ] || fail "found no k8s.io/client-go in $gomod"
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
  done
  CGO_ENABLED=0 GOBIN="$dir" nice -n 10 go install -trimpath -ldflags "$flags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    || fail "building helm $HELM_VERSION failed (see the go output above)"
  install_bin helm "$HELM_VERSION" "$dir/helm"
  elapsed "$start"
}

BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "== test control plane: kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION ($(go version))"

if from_assets; then
  echo "== reusing etcd and kube-apiserver from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
else
  cached etcd "$ETCD_VERSION" && echo "== etcd $ETCD_VERSION is cached" || build_etcd
  cached kube-apiserver "$KUBERNETES_VERSION" && echo "== kube-apiserver $KUBERNETES_VERSION is cached" || build_kubernetes_binary kube-apiserver
fi
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-controller-manager" ]; then
  echo "== reusing kube-controller-manager from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
else
  cached kube-controller-manager "$KUBERNETES_VERSION" && echo "== kube-controller-manager $KUBERNETES_VERSION is cached" || build_kubernetes_binary kube-controller-manager
fi
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kubectl" ]; then
  echo "== reusing kubectl from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
else
  cached kubectl "$KUBERNETES_VERSION" && echo "== kubectl $KUBERNETES_VERSION is cached" || build_kubernetes_binary kubectl
fi
cached helm "$HELM_VERSION" && echo "== helm $HELM_VERSION is cached" || build_helm

echo "== test control plane binaries in $BIN_DIR"
