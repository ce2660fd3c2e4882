#!/usr/bin/env bash
# build.sh OUTDIR [ARCH...]: builds the container runtime that goes into the
# image: static containerd, containerd-shim-runc-v2 and runc for each ARCH
# (default: amd64 arm64), written to OUTDIR/linux-<arch>/.
#
# Versions are pinned by the nested modules beside this script
# (containerd/go.mod, runc/go.mod, with their go.sum), so containerd's daemon
# dependencies never enter the root module. Builds are reproducible:
# -trimpath, -buildvcs=false, stripped, no build IDs, fixed versions.
# A binary newer than the go.mod/go.sum it was built from and than this
# script is kept (rebuild by deleting it). Installs the Debian packages it needs (as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [ARCH...]}
shift
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64)
mkdir -p "$out"
out=$(cd "$out" && pwd)

containerd_version=$(sed -n 's|^\s*github.com/containerd/containerd/v2 \(v[^ ]*\).*|\1|p' "$here/containerd/go.mod")
runc_version=$(sed -n 's|^\s*github.com/opencontainers/runc \(v[^ ]*\).*|\1|p' "$here/runc/go.mod")

log() { printf 'runtime: %s\n' "$*" >&2; }

# need_pkgs installs the Debian packages named that are not installed yet.
need_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	if [[ " ${missing[*]} " == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# up_to_date BIN MODDIR: BIN exists and is newer than MODDIR's go.mod and
# go.sum and than this script (its flags).
up_to_date() {
	[ -s "$1" ] && [ "$1" -nt "$2/go.mod" ] && [ "$1" -nt "$2/go.sum" ] && [ "$1" -nt "$here/build.sh" ]
}

# Common flags: reproducible, stripped, static.
goflags=(-trimpath -buildvcs=false)
cpkg=github.com/containerd/containerd/v2

for arch in "${archs[@]}"; do
	dir=$out/linux-$arch
	mkdir -p "$dir"
	case $arch in
	amd64) cc=gcc pkgs=(gcc libc6-dev libseccomp-dev pkgconf) pcdir=/usr/lib/x86_64-linux-gnu/pkgconfig ;;
	arm64) cc=aarch64-linux-gnu-gcc pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libseccomp-dev:arm64 pkgconf) pcdir=/usr/lib/aarch64-linux-gnu/pkgconfig ;;
	*) log "unsupported arch $arch (amd64, arm64)"; exit 2 ;;
	esac
	if [ "$(go env GOHOSTARCH)" = arm64 ] && [ "$arch" = arm64 ]; then cc=gcc pkgs=(gcc libc6-dev libseccomp-dev pkgconf); fi

	# containerd and its shim: pure Go (CGO_ENABLED=0), so static by
	# construction. Tags as containerd's Makefile for a static build, minus
	# the snapshotters we never use (btrfs, devmapper, zfs); CRI stays in.
	ldf="-s -w -buildid= -X $cpkg/version.Version=${containerd_version#v} -X $cpkg/version.Revision=cairn -X $cpkg/version.Package=$cpkg"
	for cmd in containerd containerd-shim-runc-v2; do
		if up_to_date "$dir/$cmd" "$here/containerd"; then
			log "linux-$arch/$cmd $containerd_version: up to date"
			continue
		fi
		tags="urfave_cli_no_docs osusergo netgo static_build no_btrfs no_devmapper no_zfs"
		[ "$cmd" = containerd-shim-runc-v2 ] && tags="$tags no_grpc"
		log "building linux-$arch/$cmd $containerd_version"
		start=$SECONDS
		(cd "$here/containerd" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
			go build "${goflags[@]}" -tags "$tags" -ldflags "$ldf" -o "$dir/$cmd.tmp" "$cpkg/cmd/$cmd")
		mv "$dir/$cmd.tmp" "$dir/$cmd"
		log "built linux-$arch/$cmd: $(du -h "$dir/$cmd" | cut -f1) in $((SECONDS - start)) s"
	done

	# runc: cgo (nsexec is C) with libseccomp, linked statically. Seccomp
	# stays in: Kubernetes' RuntimeDefault profile (and the restricted Pod
	# Security Standard) need it, and runc without it refuses such specs.
	if up_to_date "$dir/runc" "$here/runc"; then
		log "linux-$arch/runc $runc_version: up to date"
		continue
	fi
	need_pkgs "${pkgs[@]}"
	log "building linux-$arch/runc $runc_version"
	start=$SECONDS
	(cd "$here/runc" && CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc \
		PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_PATH= \
		go build "${goflags[@]}" -tags "seccomp urfave_cli_no_docs netgo osusergo" \
		-ldflags "-s -w -buildid= -X main.gitCommit=$runc_version -linkmode external -extldflags \"-static -Wl,--build-id=none\"" \
		-o "$dir/runc.tmp" github.com/opencontainers/runc)
	mv "$dir/runc.tmp" "$dir/runc"
	log "built linux-$arch/runc: $(du -h "$dir/runc" | cut -f1) in $((SECONDS - start)) s"
done
log "done: $out/linux-{$(IFS=,; echo "${archs[*]}")}/{containerd,containerd-shim-runc-v2,runc}"
