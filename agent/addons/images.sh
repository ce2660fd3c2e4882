#!/usr/bin/env bash
# images.sh BINDIR OCIDIR [ARCH...]: packs the cluster add-on binaries that
# build.sh wrote to BINDIR/linux-<arch>/ as single-layer OCI images into the
# OCI layout OCIDIR, for each ARCH (default: amd64 arm64):
#   cairn-coredns-<arch>  /coredns      entrypoint /coredns
#   cairn-pause-<arch>    /pause        entrypoint /pause
# The builder takes them as oci-layout:OCIDIR:cairn-coredns-<arch> and
# oci-layout:OCIDIR:cairn-pause-<arch>. The same binaries give the same
# digests. Uses the cairn CLI at $CAIRN (default BINDIR/cairn, built by
# make binaries).
set -euo pipefail

bin=${1:?usage: images.sh BINDIR OCIDIR [ARCH...]}
oci=${2:?usage: images.sh BINDIR OCIDIR [ARCH...]}
shift 2
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
cairn=${CAIRN:-$bin/cairn}
[ -x "$cairn" ] || { echo "images: no cairn CLI at $cairn (run make binaries, or set CAIRN)" >&2; exit 1; }
mkdir -p "$oci"
oci=$(cd "$oci" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pack ARCH NAME BINARY: packs BINARY as /NAME with entrypoint /NAME.
pack() {
	local arch=$1 name=$2 src=$3 tag=cairn-$2-$1
	[ -s "$src" ] || { echo "images: $src is missing (run agent/addons/build.sh $bin $arch)" >&2; exit 1; }
	rm -rf "$work/$tag" && mkdir -p "$work/$tag"
	install -m 0755 "$src" "$work/$tag/$name"
	# CRI refuses an image whose config has neither Entrypoint nor Cmd.
	"$cairn" input pack --dir "$work/$tag" --arch "$arch" --layout "$oci" --tag "$tag" --entrypoint "/$name"
}

for arch in "${archs[@]}"; do
	pack "$arch" coredns "$bin/linux-$arch/coredns"
	pack "$arch" pause "$bin/linux-$arch/cairn-pause"
done
