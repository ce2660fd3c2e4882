#!/usr/bin/env bash
# build.sh OUTDIR [ARCH...]: builds the binaries of the cluster add-ons for
# each ARCH (default: amd64 arm64), written to OUTDIR/linux-<arch>/:
#   coredns      the cluster DNS, trimmed to the plugins in coredns/main.go,
#                pinned by the nested module coredns/go.mod (with go.sum)
#   cairn-pause  the pod sandbox process, from the root module
#                (agent/cmd/cairn-pause)
# images.sh packs them into OCI images.
#
# Both are pure Go (CGO_ENABLED=0), so static by construction. Builds are
# reproducible: -trimpath, -buildvcs=false, stripped, no build IDs, fixed
# versions. A binary newer than its sources and than this script is kept
# (rebuild by deleting it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUTDIR [ARCH...]}
shift
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
mkdir -p "$out"
out=$(cd "$out" && pwd)

coredns_version=$(grep -o 'github.com/coredns/coredns v[^ ]*' "$here/coredns/go.mod" | head -1 | cut -d' ' -f2)

log() { printf 'addons: %s\n' "$*" >&2; }

# up_to_date BIN SRC...: BIN exists and is newer than every SRC and than
# this script (its flags).
up_to_date() {
	local bin=$1
	shift
	[ -s "$bin" ] || return 1
	for src in "$@" "$here/build.sh"; do
		[ "$bin" -nt "$src" ] || return 1
	done
}

# build DIR BIN PKG LDFLAGS: go build PKG in module DIR into BIN.
build() {
	local start=$SECONDS
	(cd "$1" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
		go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= $4" -o "$2.tmp" "$3")
	mv "$2.tmp" "$2"
	log "built ${2#"$out"/}: $(du -h "$2" | cut -f1) in $((SECONDS - start)) s"
}

for arch in "${archs[@]}"; do
	case $arch in
	amd64 | arm64) ;;
	*) log "unsupported arch $arch (amd64, arm64)"; exit 2 ;;
	esac
	dir=$out/linux-$arch
	mkdir -p "$dir"

	if up_to_date "$dir/coredns" "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go"; then
		log "linux-$arch/coredns $coredns_version: up to date"
	else
		log "building linux-$arch/coredns $coredns_version"
		build "$here/coredns" "$dir/coredns" . "-X github.com/coredns/coredns/coremain.GitCommit=cairn"
	fi

	if up_to_date "$dir/cairn-pause" "$root/go.mod" "$root"/agent/cmd/cairn-pause/*.go; then
		log "linux-$arch/cairn-pause: up to date"
	else
		log "building linux-$arch/cairn-pause"
		build "$root" "$dir/cairn-pause" ./agent/cmd/cairn-pause ""
	fi
done
log "done: $out/linux-{$(IFS=,; echo "${archs[*]}")}/{coredns,cairn-pause}"
