#!/usr/bin/env bash
# Wraps Debian's kernel and systemd-boot packages as OCI images in the
# layout CACHE/oci, the inputs the boards in boards/ name:
#   debian-linux-<arch>        /boot/vmlinuz, /lib/modules/<version>, /boot/dtbs/
#   debian-systemd-boot-<arch> usr/lib/systemd/boot/efi/systemd-boot*.efi
# The unpacked kernel trees stay in CACHE/debian/linux-<arch> for tests.
# usage: debian-inputs.sh CAIRN_BINARY CACHE_DIR
set -euo pipefail
cairn=$1 cache=$2
layout=$cache/oci
work=$cache/debs
mkdir -p "$work"

# linux-image-<arch> is a metapackage; its dependency is the real kernel.
kernel_pkg() {
  apt-cache depends "linux-image-$1:$1" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' | sed 's/:.*//'
}

for arch in amd64 arm64; do
  kpkg=$(kernel_pkg "$arch")
  [ -n "$kpkg" ] || { echo "inputs: no kernel package for $arch (run builder/scripts/deps.sh first)" >&2; exit 1; }
  stamp=$work/$kpkg-$arch.done
  if [ ! -f "$stamp" ]; then
    echo "inputs: wrapping $kpkg ($arch)"
    rm -rf "$work/$arch" && mkdir -p "$work/$arch" && (cd "$work/$arch" && apt-get download -q "$kpkg:$arch" "systemd-boot-efi:$arch" >/dev/null 2>&1)
    k=$work/$arch/kernel b=$work/$arch/boot
    dpkg-deb -x "$work/$arch"/linux-image-*.deb "$k.raw"
    dpkg-deb -x "$work/$arch"/systemd-boot-efi_*.deb "$b"
    mkdir -p "$k/boot" "$k/lib"
    cp "$k.raw"/boot/vmlinuz-* "$k/boot/vmlinuz"
    cp "$k.raw"/boot/config-* "$k/boot/config"
    mv "$k.raw/lib/modules" "$k/lib/modules"
    if [ -d "$k.raw/usr/lib/linux-image-${kpkg#linux-image-}" ]; then
      mv "$k.raw/usr/lib/linux-image-${kpkg#linux-image-}" "$k/boot/dtbs"
    fi
    "$cairn" input pack --dir "$k" --arch "$arch" --layout "$layout" --tag "debian-linux-$arch"
    "$cairn" input pack --dir "$b" --arch "$arch" --layout "$layout" --tag "debian-systemd-boot-$arch"
    mkdir -p "$cache/debian" && rm -rf "$cache/debian/linux-$arch" && mv "$k" "$cache/debian/linux-$arch"
    rm -rf "$work/$arch"
    rm -f "$work"/*-"$arch".done
    touch "$stamp"
  fi
done
