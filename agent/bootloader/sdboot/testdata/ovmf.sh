#!/bin/bash
# Checks sdboot's entry order with the real systemd-boot under OVMF: each
# step changes the ESP tree with this package (ovmfesp, through DirFS),
# packs it into a GPT disk's FAT32 ESP, boots it and reads which entry
# systemd-boot chose from the kernel's "Command line:" (each entry carries
# cairn.marker=…; with no root the kernel panics and QEMU exits), then reads
# the entries back, with systemd-boot's counter renames.
#   agent/bootloader/sdboot/testdata/ovmf.sh [KERNEL]   (from the repository root)
# Needs qemu-system-x86_64, ovmf, systemd-boot-efi, dosfstools, mtools, gdisk.
# Not run by CI: each boot takes 10-20 s under TCG.
set -euo pipefail
KERNEL=${1:-.cache/debian/linux-amd64/boot/vmlinuz}
SDBOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
go build -o "$W/ovmfesp" ./agent/bootloader/sdboot/testdata/ovmfesp
ESP=$W/esp
mkdir -p "$ESP/EFI/BOOT" "$ESP/loader/entries"
cp "$SDBOOT" "$ESP/EFI/BOOT/BOOTX64.EFI"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
# A foreign entry that sorts before every cairn-* name: only "default
# cairn-*" in loader.conf keeps it from booting.
printf 'title Debian\nlinux /cairn/a/vmlinuz\noptions console=ttyS0 panic=-1 cairn.marker=foreign\n' >"$ESP/loader/entries/debian.conf"
op() { "$W/ovmfesp" "$ESP" "$@" 2>/dev/null; }

boot() { # boot EXPECTED-MARKER WHAT
	rm -f "$W/esp.img" "$W/disk.img"
	truncate -s 64M "$W/esp.img"
	mkfs.vfat -F 32 -n ESP "$W/esp.img" >/dev/null
	mcopy -s -i "$W/esp.img" "$ESP"/* ::/
	truncate -s 66M "$W/disk.img"
	sgdisk -n 1:2048:+64M -t 1:ef00 -c 1:ESP "$W/disk.img" >/dev/null
	dd if="$W/esp.img" of="$W/disk.img" bs=1M seek=1 conv=notrunc status=none
	local before after got
	before=$(cd "$ESP/loader/entries" && ls | grep '^cairn-' | tr '\n' ' ')
	timeout 180 qemu-system-x86_64 -machine q35 -m 512 -nographic -no-reboot \
		-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
		-drive if=pflash,format=raw,unit=1,file="$W/vars.fd" \
		-drive file="$W/disk.img",format=raw,if=virtio >"$W/console" 2>&1 || true
	got=$(grep -a -o 'Command line:.*' "$W/console" | grep -a -o 'cairn.marker=[^ ]*' | head -1 | cut -d= -f2 | tr -d '\r')
	dd if="$W/disk.img" of="$W/esp.img" bs=1M skip=1 count=64 status=none
	rm -f "$ESP"/loader/entries/*
	mcopy -n -i "$W/esp.img" '::/loader/entries/*' "$ESP/loader/entries/"
	after=$(cd "$ESP/loader/entries" && ls | grep '^cairn-' | tr '\n' ' ')
	if [ "$got" = "$1" ]; then r=ok; else r=FAIL; fails=$((fails + 1)); fi
	printf '%-4s %-44s booted %-3s (want %s)  entries before: %s after: %s\n' "$r" "$2" "${got:-none}" "$1" "$before" "$after"
}

fails=0
op install a 2.0 a1 "$KERNEL"
op commit a
op install b 3.0 b1 "$KERNEL"
op arm b
boot b1 "trial of b after committed a"
boot a1 "trial counter of b exhausted, not committed"
op arm b
boot b1 "second trial of b"
op commit b
boot b1 "committed b"
op install a 1.0 a2 "$KERNEL"
op arm a
boot a2 "trial of a (lower name, version) after b"
boot b1 "trial of a exhausted: rollback to b"
op commit a
boot a2 "commit of a, the lower version"
op markbad a
boot b1 "a marked bad"
# Controls, written by hand: the names before generations lose a trial of a
# after a committed b (b > a), which is why the names carry one; an old
# name sorts after every generation; and a dot-named temporary file, as
# DirFS leaves while it writes, is never booted.
entry() { # entry FILE SLOT MARKER
	printf 'title %s\nlinux /cairn/%s/vmlinuz\noptions console=ttyS0 panic=-1 cairn.marker=%s cairn.slot=%s\n' "$3" "$2" "$3" "$2" >"$ESP/loader/entries/$1"
}
rm -f "$ESP"/loader/entries/cairn-*
entry cairn-b.conf b b1
entry cairn-a+1.conf a a2
boot b1 "control: plain names, trial of a after b"
rm -f "$ESP"/loader/entries/cairn-*
entry cairn-a.conf a a1
entry cairn-00000002-b+1.conf b b1
entry .cairn-00000003-a.conf.4711 a temp
boot b1 "control: old name a, trial of b; a dot file"
boot a1 "control: old name a, trial of b exhausted"
echo "systemd-boot: $(dpkg-query -W -f '${Version}' systemd-boot-efi 2>/dev/null || echo unknown)"
exit $((fails > 0))
