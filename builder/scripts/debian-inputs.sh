#!/usr/bin/env bash
# Wraps Debian's kernel, systemd-boot and nftables packages as OCI images in
# the layout CACHE/oci, the inputs the boards in boards/ name:
#   debian-linux-<arch>        /boot/vmlinuz, /lib/modules/<version>, /boot/dtbs/
#   debian-systemd-boot-<arch> usr/lib/systemd/boot/efi/systemd-boot*.efi
#   debian-nftables-<arch>     usr/sbin/nft with its libraries (see below)
#   debian-raspi-firmware      the Raspberry Pi firmware, usr/lib/raspi-firmware/
#                              (start4.elf, fixup4.dat, bootcode.bin, …; see below)
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

# nft, which kube-proxy's nftables mode and the CNI plugins' masquerade and
# port mappings run, with exactly the shared libraries it needs (its ELF
# NEEDED entries, followed recursively) and the dynamic loader, at the paths
# Debian gives them, for boards' kubernetes.tools:
#   debian-nftables-<arch>     usr/sbin/nft, lib*/…/lib*.so.N, the loader,
#                              etc/protocols and etc/services (nft names
#                              protocols and ports through them)
# Libraries are copied under their sonames, without symlinks. The stamp
# carries the packages' versions: a Debian update repacks.
nft_pkgs=(nftables libnftables1 libnftnl11 libmnl0 libjansson4 libgmp10 libxtables12
          libedit2 libbsd0 libmd0 libtinfo6 libc6)
nft_all_pkgs=(netbase) # Architecture: all

# needed FILE: the sonames FILE names as NEEDED.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
# interp FILE: the program interpreter FILE asks for.
interp() { readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p'; }
# inside ROOT PATH: PATH (absolute, inside ROOT) with symlinks followed
# inside ROOT, not on this machine.
inside() {
  local root=$1 p=$2 t n=0
  while [ -L "$root$p" ]; do
    t=$(readlink "$root$p")
    case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
    n=$((n + 1)); [ $n -lt 40 ] || { echo "inputs: symlink loop at $p" >&2; return 1; }
  done
  [ -f "$root$p" ] || { echo "inputs: $p is missing in the unpacked packages" >&2; return 1; }
  printf '%s\n' "$p"
}

# One apt-cache call for both architectures (each call reads the whole
# package cache): lines PACKAGE VERSION ARCH.
nft_versions=$(apt-cache show --no-all-versions "${nft_pkgs[@]/%/:amd64}" "${nft_pkgs[@]/%/:arm64}" "${nft_all_pkgs[@]}" 2>/dev/null |
  sed -n 's/^Package: //p; s/^Architecture: //p; s/^Version: //p' | paste -d' ' - - -)

for arch in amd64 arm64; do
  case $arch in amd64) triplet=x86_64-linux-gnu ;; arm64) triplet=aarch64-linux-gnu ;; esac
  versions=$(grep -E " ($arch|all)$" <<<"$nft_versions" | sort)
  for p in "${nft_pkgs[@]}" "${nft_all_pkgs[@]}"; do
    grep -q "^$p " <<<"$versions" || { echo "inputs: no Debian package $p for $arch (run builder/scripts/deps.sh first)" >&2; exit 1; }
  done
  stamp=$work/nftables-$(printf '%s\n' "$versions" | sha256sum | cut -c1-16)-$arch.done
  [ -f "$stamp" ] && continue
  echo "inputs: packing nft with its libraries ($arch)"
  d=$work/nft-$arch
  rm -rf "$d" && mkdir -p "$d/debs" "$d/all" "$d/tree"
  (cd "$d/debs" && apt-get download -q "${nft_pkgs[@]/%/:$arch}" "${nft_all_pkgs[@]}" >/dev/null 2>&1) ||
    { echo "inputs: apt-get download of ${nft_pkgs[*]} ($arch) failed (check the network and apt sources)" >&2; exit 1; }
  for deb in "$d"/debs/*.deb; do dpkg-deb -x "$deb" "$d/all"; done
  t=$d/tree
  install -D -m 0755 "$d/all/usr/sbin/nft" "$t/usr/sbin/nft"
  install -D -m 0644 "$d/all/etc/protocols" "$t/etc/protocols"
  install -D -m 0644 "$d/all/etc/services" "$t/etc/services"
  # The loader, at the path nft asks for.
  ld=$(interp "$t/usr/sbin/nft")
  [ -n "$ld" ] || { echo "inputs: nft ($arch) names no program interpreter" >&2; exit 1; }
  install -D -m 0755 "$d/all$(inside "$d/all" "$ld")" "$t$ld"
  # Libraries, breadth first from nft: each NEEDED soname found in the
  # multiarch directories of the unpacked packages.
  queue=($(needed "$t/usr/sbin/nft")) done_libs=" "
  while [ ${#queue[@]} -gt 0 ]; do
    so=${queue[0]} queue=("${queue[@]:1}")
    [[ $done_libs == *" $so "* ]] && continue
    done_libs+="$so "
    [ "$so" != "$(basename "$ld")" ] || continue # libc's NEEDED loader is the one already running
    found=
    for dir in /lib/$triplet /usr/lib/$triplet /lib /usr/lib; do
      if [ -e "$d/all$dir/$so" ] || [ -L "$d/all$dir/$so" ]; then found=$dir; break; fi
    done
    [ -n "$found" ] || { echo "inputs: nft ($arch) needs $so, which none of ${nft_pkgs[*]} holds: add its package to nft_pkgs in $0" >&2; exit 1; }
    install -D -m 0644 "$d/all$(inside "$d/all" "$found/$so")" "$t$found/$so"
    queue+=($(needed "$t$found/$so"))
  done
  echo "inputs: nft ($arch) needs:$done_libs"
  # Prove the tree runs nft on its own (the host's architecture only).
  if [ "$arch" = "$(dpkg --print-architecture)" ] && [ "$(id -u)" = 0 ]; then
    chroot "$t" /usr/sbin/nft --version >/dev/null ||
      { echo "inputs: chroot $t /usr/sbin/nft --version failed: the packed tree misses something" >&2; exit 1; }
  fi
  "$cairn" input pack --dir "$t" --arch "$arch" --layout "$layout" --tag "debian-nftables-$arch"
  rm -rf "$d" "$work"/nftables-*-"$arch".done
  touch "$stamp"
done

# The Raspberry Pi's boot firmware, for boards/rpi4.yaml's firmware.image:
# Debian's raspi-firmware package (start*.elf, fixup*.dat, bootcode.bin
# under usr/lib/raspi-firmware/), in the non-free-firmware component, which
# is enabled here on the main suite's Components: line if it is not yet
# (deb822 sources, as Debian 12 ships them; once). The stamp carries the
# package's version: a Debian update repacks.
sources=/etc/apt/sources.list.d/debian.sources
if ! apt-cache show raspi-firmware >/dev/null 2>&1; then
  if [ -f "$sources" ] && ! grep -q '^Components:.*non-free-firmware' "$sources"; then
    echo "inputs: enabling Debian's non-free-firmware component in $sources (for raspi-firmware)"
    if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
    $sudo sed -i '/^Components:/{/non-free-firmware/!s/$/ non-free-firmware/}' "$sources"
  fi
  if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
fi
rpi_version=$(apt-cache show --no-all-versions raspi-firmware 2>/dev/null | sed -n 's/^Version: //p' | head -1)
[ -n "$rpi_version" ] || { echo "inputs: no Debian package raspi-firmware: add non-free-firmware to the Components: line of $sources and run apt-get update" >&2; exit 1; }
stamp=$work/raspi-firmware-$rpi_version.done
if [ ! -f "$stamp" ]; then
  echo "inputs: wrapping raspi-firmware $rpi_version"
  d=$work/raspi-firmware
  rm -rf "$d" && mkdir -p "$d/debs" "$d/all" "$d/tree"
  (cd "$d/debs" && apt-get download -q raspi-firmware >/dev/null 2>&1) ||
    { echo "inputs: apt-get download raspi-firmware failed (check the network and apt sources)" >&2; exit 1; }
  dpkg-deb -x "$d"/debs/raspi-firmware_*.deb "$d/all"
  [ -f "$d/all/usr/lib/raspi-firmware/start4.elf" ] ||
    { echo "inputs: raspi-firmware $rpi_version has no usr/lib/raspi-firmware/start4.elf" >&2; exit 1; }
  mkdir -p "$d/tree/usr/lib" "$d/tree/usr/share/doc"
  mv "$d/all/usr/lib/raspi-firmware" "$d/tree/usr/lib/raspi-firmware"
  [ ! -d "$d/all/usr/share/doc/raspi-firmware" ] || mv "$d/all/usr/share/doc/raspi-firmware" "$d/tree/usr/share/doc/"
  # The firmware is built for the VideoCore, not for an arm64 CPU; arm64 is
  # the arch of the boards that boot it.
  "$cairn" input pack --dir "$d/tree" --arch arm64 --layout "$layout" --tag debian-raspi-firmware
  rm -rf "$d" "$work"/raspi-firmware-*.done
  touch "$stamp"
fi
