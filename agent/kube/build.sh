#!/usr/bin/env bash
# build.sh OUTDIR [ARCH...]: builds cairn-kube, the single-process Kubernetes,
# for each ARCH (default: amd64 arm64), written to OUTDIR/linux-<arch>/cairn-kube.
#
# The Kubernetes version is pinned by the nested module beside this script
# (go.mod, go.sum), so its hundreds of dependencies never enter the root
# module. cairn-kube is pure Go (CGO_ENABLED=0): kine's SQLite is
# modernc.org/sqlite, so the binary is static without a C cross toolchain.
# Builds are reproducible: -trimpath, -buildvcs=false, stripped, no build ID,
# the version information Kubernetes' own build stamps fixed by go.mod.
# A binary newer than go.mod, go.sum, every .go file here and this script is
# kept (rebuild by deleting it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [ARCH...]}
shift
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { printf 'kube: %s\n' "$*" >&2; }

k8s_version=$(sed -n 's|^\s*k8s.io/kubernetes \(v[^ ]*\).*|\1|p' "$here/go.mod")
[ -n "$k8s_version" ] || { log "no k8s.io/kubernetes version in $here/go.mod"; exit 1; }
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}

# up_to_date BIN: BIN exists and is newer than go.mod, go.sum, this script
# and every Go source of the module.
up_to_date() {
	[ -s "$1" ] && [ "$1" -nt "$here/go.mod" ] && [ "$1" -nt "$here/go.sum" ] && [ "$1" -nt "$here/build.sh" ] &&
		[ -z "$(find "$here" -name '*.go' -newer "$1" -print -quit)" ]
}

# What Kubernetes' hack/lib/version.sh stamps, for both copies of the
# version package (servers report one, clients the other). buildDate is
# fixed so the same inputs give the same bytes.
ldf="-s -w -buildid="
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldf+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

for arch in "${archs[@]}"; do
	case $arch in
	amd64 | arm64) ;;
	*) log "unsupported arch $arch (amd64, arm64)"; exit 2 ;;
	esac
	dir=$out/linux-$arch
	bin=$dir/cairn-kube
	mkdir -p "$dir"
	if up_to_date "$bin"; then
		log "linux-$arch/cairn-kube $k8s_version: up to date"
		continue
	fi
	log "building linux-$arch/cairn-kube $k8s_version (a cold build takes a while)"
	start=$SECONDS
	# providerless: no in-tree cloud provider code.
	(cd "$here" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
		go build -trimpath -buildvcs=false -tags providerless -ldflags "$ldf" \
		-o "$bin.tmp" ./cmd/cairn-kube)
	mv "$bin.tmp" "$bin"
	log "built linux-$arch/cairn-kube: $(du -h "$bin" | cut -f1) in $((SECONDS - start)) s"
done
log "done: $out/linux-{$(IFS=,; echo "${archs[*]}")}/cairn-kube"
