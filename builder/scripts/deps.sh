#!/usr/bin/env bash
# Installs the Debian packages that building, booting and testing need.
# Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 u-boot-qemu
      squashfs-tools mtools dosfstools e2fsprogs gdisk fdisk bmap-tools zstd xz-utils
      binutils iproute2 docker-registry nftables dnsmasq-base)

if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "deps: adding the arm64 architecture (for the arm64 kernel and boot loader packages)"
  $sudo dpkg --add-architecture arm64
  updated=
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${updated-x}" = "" ]; then
  echo "deps: installing ${missing[*]:-nothing new}"
  $sudo apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
