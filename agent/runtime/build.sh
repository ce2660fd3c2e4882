#!/usr/bin/env bash
# build.sh OUTDIR [ARCH...]: builds the container runtime that goes into the
# image besides containerd's daemon (which cairn-agent carries): static
# containerd-shim-runc-v2 and runc for each ARCH
# (default: amd64 arm64), written to OUTDIR/linux-<arch>/, and the CNI
# plugins CRI runs for pod networking (bridge, host-local, loopback,
# portmap), written to OUTDIR/linux-<arch>/cni/.
#
# Versions are pinned by the root module (containerd, which cairn-agent's
# client and daemon use too) and by the nested modules beside this script
# (runc/go.mod, cni/go.mod, with their go.sum), so runc's and the plugins'
# dependencies stay out of the root module. Builds are reproducible:
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

root=$(cd "$here/../.." && pwd)
containerd_version=$(sed -n 's|^\s*github.com/containerd/containerd/v2 \(v[^ ]*\).*|\1|p' "$root/go.mod")
runc_version=$(sed -n 's|^\s*github.com/opencontainers/runc \(v[^ ]*\).*|\1|p' "$here/runc/go.mod")
cni_version=$(sed -n 's|^\s*github.com/containernetworking/plugins \(v[^ ]*\).*|\1|p' "$here/cni/go.mod")

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

# up_to_date BIN MODDIR: BIN exists and is newer than every file of MODDIR
# (go.mod, go.sum, our sources) and than this script (its flags).
up_to_date() {
	[ -s "$1" ] && [ "$1" -nt "$here/build.sh" ] && [ -z "$(find "$2" -type f -newer "$1" -print -quit)" ]
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

	# containerd's shim: pure Go (CGO_ENABLED=0), so static by
	# construction; tags as containerd's Makefile for a static build. (The
	# daemon itself is part of cairn-agent: see agent/containerd.)
	ldf="-s -w -buildid= -X $cpkg/version.Version=${containerd_version#v} -X $cpkg/version.Revision=cairn -X $cpkg/version.Package=$cpkg"
	for cmd in containerd-shim-runc-v2; do
		if [ -s "$dir/$cmd" ] && [ "$dir/$cmd" -nt "$root/go.mod" ] && [ "$dir/$cmd" -nt "$here/build.sh" ]; then
			log "linux-$arch/$cmd $containerd_version: up to date"
			continue
		fi
		log "building linux-$arch/$cmd $containerd_version"
		start=$SECONDS
		(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
			go build "${goflags[@]}" -tags "urfave_cli_no_docs osusergo netgo static_build no_grpc" \
			-ldflags "$ldf" -o "$dir/$cmd.tmp" "$cpkg/cmd/$cmd")
		mv "$dir/$cmd.tmp" "$dir/$cmd"
		log "built linux-$arch/$cmd: $(du -h "$dir/$cmd" | cut -f1) in $((SECONDS - start)) s"
	done

	# CNI plugins: pure Go, one binary each. Upstream's plugins are
	# separate main packages, so they cannot be linked into one multi-call
	# binary without rewriting them. bridge and portmap program netfilter
	# by running the nft (or iptables) binary: see 10-cairn.conflist.tmpl.
	mkdir -p "$dir/cni"
	cpath=github.com/containernetworking/plugins
	for p in main/bridge ipam/host-local main/loopback meta/portmap; do
		cmd=${p#*/}
		if up_to_date "$dir/cni/$cmd" "$here/cni"; then
			log "linux-$arch/cni/$cmd $cni_version: up to date"
			continue
		fi
		log "building linux-$arch/cni/$cmd $cni_version"
		start=$SECONDS
		(cd "$here/cni" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch \
			go build "${goflags[@]}" \
			-ldflags "-s -w -buildid= -X $cpath/pkg/utils/buildversion.BuildVersion=$cni_version" \
			-o "$dir/cni/$cmd.tmp" "$cpath/plugins/$p")
		mv "$dir/cni/$cmd.tmp" "$dir/cni/$cmd"
		log "built linux-$arch/cni/$cmd: $(du -h "$dir/cni/$cmd" | cut -f1) in $((SECONDS - start)) s"
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
log "done: $out/linux-{$(IFS=,; echo "${archs[*]}")}/{containerd-shim-runc-v2,runc,cni/{bridge,host-local,loopback,portmap}}"
