package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/bootloader/tryboot"
	"github.com/cairn-edge/cairn/agent/contract"
)

// disk is a fake partition table: label → partition.
type disk map[string]blockdev.Partition

func (d disk) find(label string) (blockdev.Partition, error) {
	if p, ok := d[label]; ok {
		if p.Path == "dup" {
			return blockdev.Partition{}, fmt.Errorf("2 partitions are labeled %s (/dev/sda1, /dev/sdb1): remove the other disk or relabel it", label)
		}
		return p, nil
	}
	return blockdev.Partition{}, fmt.Errorf("%w: no partition is labeled %s", blockdev.ErrNotFound, label)
}

func part(dev string, n int) blockdev.Partition {
	return blockdev.Partition{Path: fmt.Sprintf("/dev/%sp%d", dev, n), Disk: "/dev/" + dev, Number: n}
}

var (
	uefiDisk = disk{contract.LabelESP: part("vda", 1), contract.SlotA.Label(): part("vda", 2), contract.SlotB.Label(): part("vda", 3)}
	piCard   = disk{
		contract.RPiAutoLabel: part("mmcblk0", 1), contract.SlotA.RPiBootLabel(): part("mmcblk0", 2), contract.SlotB.RPiBootLabel(): part("mmcblk0", 3),
		contract.SlotA.Label(): part("mmcblk0", 4), contract.SlotB.Label(): part("mmcblk0", 5),
	}
)

func with(d disk, label string, p blockdev.Partition) disk {
	out := disk{}
	for k, v := range d {
		out[k] = v
	}
	if p.Path == "" {
		delete(out, label)
	} else {
		out[label] = p
	}
	return out
}

func TestDetectBootMedia(t *testing.T) {
	for _, tt := range []struct {
		name    string
		disk    disk
		want    bootMedia
		wantErr string
	}{
		{"UEFI board", uefiDisk, bootMedia{familyUEFI, []fatMount{{contract.LabelESP, "/dev/vdap1", "/boot"}}}, ""},
		{"Raspberry Pi", piCard, bootMedia{familyRPi, []fatMount{
			{contract.RPiAutoLabel, "/dev/mmcblk0p1", "/boot"},
			{"BOOT-A", "/dev/mmcblk0p2", "/run/cairn/boot/a"},
			{"BOOT-B", "/dev/mmcblk0p3", "/run/cairn/boot/b"},
		}}, ""},
		// An ESP next to CAIRN-AUTO (a USB stick with a PC's image) does
		// not make a Pi a PC: CAIRN-AUTO decides.
		{"Pi with an ESP around", with(piCard, contract.LabelESP, part("sda", 1)), bootMedia{familyRPi, []fatMount{
			{contract.RPiAutoLabel, "/dev/mmcblk0p1", "/boot"},
			{"BOOT-A", "/dev/mmcblk0p2", "/run/cairn/boot/a"},
			{"BOOT-B", "/dev/mmcblk0p3", "/run/cairn/boot/b"},
		}}, ""},
		{"Pi without BOOT-B", with(piCard, "BOOT-B", blockdev.Partition{}), bootMedia{}, "so this is a Raspberry Pi's card, but partition not found: no partition is labeled BOOT-B (reflash the card)"},
		{"Pi with BOOT-A on another disk", with(piCard, "BOOT-A", part("sda", 2)), bootMedia{}, "BOOT-A on /dev/sda: two Cairn disks are attached"},
		{"two CAIRN-AUTO", with(piCard, contract.RPiAutoLabel, blockdev.Partition{Path: "dup"}), bootMedia{}, "2 partitions are labeled CAIRN-AUTO"},
		{"no boot partition", disk{}, bootMedia{}, "neither ESP nor CAIRN-AUTO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detectBootMedia(tt.disk.find)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("detectBootMedia = %+v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("detectBootMedia = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

// TestMountBootMedia: every partition is mounted, a failing one named,
// the others mounted still.
func TestMountBootMedia(t *testing.T) {
	old := mountFAT
	t.Cleanup(func() { mountFAT = old })
	var mounted []string
	mountFAT = func(device, dir string) error {
		if device == "/dev/mmcblk0p2" {
			return errors.New("invalid argument")
		}
		mounted = append(mounted, device+" "+dir)
		return nil
	}
	m, err := detectBootMedia(piCard.find)
	if err != nil {
		t.Fatal(err)
	}
	err = m.mount()
	if err == nil || !strings.Contains(err.Error(), "mounting BOOT-A (/dev/mmcblk0p2) at /run/cairn/boot/a: invalid argument") {
		t.Errorf("mount = %v", err)
	}
	if want := []string{"/dev/mmcblk0p1 /boot", "/dev/mmcblk0p3 /run/cairn/boot/b"}; !reflect.DeepEqual(mounted, want) {
		t.Errorf("mounted %q, want %q", mounted, want)
	}
}

// TestBootMediaLoader: a Pi gets tryboot and no ESP to copy boot files
// from (its loader reads them back); a UEFI board, or one whose media
// were not found, systemd-boot on the ESP as before.
func TestBootMediaLoader(t *testing.T) {
	for _, tt := range []struct {
		name    string
		media   bootMedia
		wantPi  bool
		wantESP bool
	}{
		{"Raspberry Pi", bootMedia{family: familyRPi}, true, false},
		{"UEFI", bootMedia{family: familyUEFI}, false, true},
		{"not found", bootMedia{}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bl, esp, err := tt.media.loader(nil)
			if err != nil {
				t.Fatal(err)
			}
			_, pi := bl.(*tryboot.Loader)
			_, sd := bl.(*sdboot.Loader)
			if pi != tt.wantPi || sd == tt.wantPi || (esp != nil) != tt.wantESP {
				t.Errorf("loader %T, ESP %v; want tryboot %v, an ESP %v", bl, esp, tt.wantPi, tt.wantESP)
			}
		})
	}
}
