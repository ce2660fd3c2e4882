// Package contract is Cairn's on-disk contract: the names and paths that the
// builder writes and the node reads — partition labels and type GUIDs, slot
// names, the kernel command line's slot parameter, ESP paths, per-node files,
// the slot's own files and the state kept on CAIRN-DATA.
//
// It is the one place these are spelled. Builder and agent both import it,
// and it imports nothing of ours (a test checks both that, and that no other
// package of the module spells one of these as a literal), so the two sides
// cannot drift apart.
//
//	p, err := blockdev.WaitPartition(ctx, contract.SlotB.Label()) // "CAIRN-B"
//	entry := path.Join(contract.ESPEntriesDir, name)            // on the ESP
package contract

import (
	"fmt"
	"strings"
)

// Slot names a root slot: "a" or "b".
type Slot string

// The two root slots.
const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Slots are the slots in partition order.
var Slots = []Slot{SlotA, SlotB}

// ParseSlot reads a slot name; case is ignored.
func ParseSlot(s string) (Slot, error) {
	switch Slot(strings.ToLower(s)) {
	case SlotA:
		return SlotA, nil
	case SlotB:
		return SlotB, nil
	}
	return "", fmt.Errorf("%q is not a slot (want a or b)", s)
}

// Other is the other slot of the pair.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Label is the slot's GPT partition label, CAIRN-A or CAIRN-B.
func (s Slot) Label() string { return slotLabelPrefix + strings.ToUpper(string(s)) }

// BootDir is the ESP directory holding the slot's kernel and initramfs.
func (s Slot) BootDir() string { return espSlotRoot + "/" + string(s) }

// Partition labels (GPT partition names). cairn-init and the agent find
// partitions by these.
const (
	LabelESP  = "ESP"
	LabelData = "CAIRN-DATA"
	// slotLabelPrefix + the slot's letter in capitals labels a root slot.
	slotLabelPrefix = "CAIRN-"
)

// DataFSLabel is the ext4 volume label of the data file system.
const DataFSLabel = LabelData

// Partition type GUIDs, from the Discoverable Partitions Specification.
const (
	TypeESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	// TypeVar marks CAIRN-DATA (mounted at /var).
	TypeVar = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
	// TypeBasicData marks a FAT partition that is not an ESP: the
	// Raspberry Pi's CAIRN-AUTO, BOOT-A and BOOT-B.
	TypeBasicData = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
)

// RootTypes are the root partition type GUIDs of the slots, per Go arch.
var RootTypes = map[string]string{
	"amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
	"arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
}

// SlotParam is the kernel command line parameter naming the slot to boot:
// cairn.slot=a or cairn.slot=b.
const SlotParam = "cairn.slot"

// SlotOption is the command line option that boots slot s.
func SlotOption(s Slot) string { return SlotParam + "=" + string(s) }

// The ESP, as the node mounts it and as paths inside it (relative to its root).
const (
	// ESPMount is where the agent mounts the ESP.
	ESPMount = "/boot"
	// ESPLoaderConf is systemd-boot's configuration.
	ESPLoaderConf = "loader/loader.conf"
	// ESPEntriesDir holds the Boot Loader Specification entries.
	ESPEntriesDir = "loader/entries"
	// espSlotRoot holds one directory per slot (Slot.BootDir).
	espSlotRoot = "cairn"
	// KernelFile and InitrdFile are a slot's boot files in its BootDir.
	KernelFile = "vmlinuz"
	InitrdFile = "initrd"
)

// EFIBootPaths are the removable-media boot paths UEFI firmware looks for, per Go arch.
var EFIBootPaths = map[string]string{
	"amd64": "EFI/BOOT/BOOTX64.EFI",
	"arm64": "EFI/BOOT/BOOTAA64.EFI",
}

// Per-node files: dropped on the ESP (a FAT any workstation can write) so
// one image serves a fleet. Names inside the ESP; the node reads them under
// ESPMount.
const (
	// NodeFileName is the per-node configuration (hostname, addresses).
	NodeFileName = "cairn-node.yaml"
	// KubeJoinFileName is the per-node kubeconfig an agent-mode node joins with.
	KubeJoinFileName = "cairn-kube-join.kubeconfig"
	// NodeCertFileName and NodeKeyFileName are the node API's identity of
	// this node, issued for its name when it was provisioned.
	NodeCertFileName = "cairn-node.crt"
	NodeKeyFileName  = "cairn-node.key"
)

// Per-node files as the node sees them.
const (
	NodeFile     = ESPMount + "/" + NodeFileName
	KubeJoinFile = ESPMount + "/" + KubeJoinFileName
	NodeCertFile = ESPMount + "/" + NodeCertFileName
	NodeKeyFile  = ESPMount + "/" + NodeKeyFileName
)

// Files of a slot (read-only at run time), as absolute paths on the node;
// the builder writes them relative to the slot root (SlotPath).
const (
	// Init is PID 1 in the slot (and /init in the initramfs).
	Init = "/sbin/init"
	// InitramfsMarker exists only in the initramfs: cairn-init's stage 1 runs there.
	InitramfsMarker = "/etc/cairn/initramfs"
	// ReleaseFile names the slot's image, version, board and kernel.
	ReleaseFile = "/etc/cairn/release"
	// ModulesList lists the kernel modules to load, in order.
	ModulesList = "/etc/cairn/modules"
	// AgentConfig is the agent's configuration, written from the spec.
	AgentConfig = "/etc/cairn/agent.yaml"
	// SysctlFile is the kernel settings cairn-init applies, from the spec's sysctl section.
	SysctlFile = "/etc/cairn/sysctl.conf"
	// APITLSDir holds the node API's CA certificate (the node's own
	// identity is a per-node file: NodeCertFile, NodeKeyFile).
	APITLSDir = "/etc/cairn/api"
	// APICRLBaked is the node API's revocation list as the builder baked
	// it in (the PKI directory's crl.pem); the agent also keeps APICRLFile
	// and uses the newer.
	APICRLBaked = APITLSDir + "/" + APICRLName
	// APICRLName is the revocation list's file name, in the slot and the
	// builder's PKI directory.
	APICRLName = "crl.pem"
	// KubeJoinBaked is a join kubeconfig baked into the slot by the spec.
	KubeJoinBaked = "/etc/cairn/kube/join.kubeconfig"
	// ServiceImagesDir holds each system service's image as an OCI layout.
	ServiceImagesDir = "/usr/share/cairn/images"
	// KubeImagesDir holds the cluster's baked images as OCI layouts.
	KubeImagesDir = "/usr/share/cairn/kube/images"
	// KubeManifestsBaked holds the manifests the spec bakes in, applied at boot.
	KubeManifestsBaked = "/usr/share/cairn/kube/manifests"
)

// SlotPath is an absolute slot path as the builder's trees name it (no leading slash).
func SlotPath(abs string) string { return strings.TrimPrefix(abs, "/") }

// State on CAIRN-DATA, mounted at DataMount. Upgrades never touch it.
const (
	DataMount = "/var"
	// StateDir is the agent's and cairn-init's state.
	StateDir = "/var/lib/cairn"
	// BootCounter counts boots.
	BootCounter = StateDir + "/boots"
	// ClockFile keeps the last known time, so the clock never goes back.
	ClockFile = StateDir + "/clock"
	// NodeIDFile keeps the node's generated name suffix.
	NodeIDFile = StateDir + "/node-id"
	// KubeDir is the bundled Kubernetes' state: datastore, PKI, kubeconfigs.
	KubeDir = StateDir + "/kube"
	// KubeManifestsDir takes manifests dropped in by users.
	KubeManifestsDir = KubeDir + "/manifests"
	// KubeDatastore is the server's datastore, kine's SQLite database:
	// dataDir/db/state.db in agent/kube (a module of its own, which
	// cannot import this one: the agent gives it KubeDir as dataDir).
	KubeDatastore = KubeDir + "/db/state.db"
	// UpdateDir is the upgrade's state: the record of the attempt and its
	// checkpoint (agent/update), and the datastore snapshot of a trial.
	UpdateDir = StateDir + "/update"
	// UpdateRecord is the current or last upgrade attempt.
	UpdateRecord = UpdateDir + "/record.json"
	// KubeSnapshot is the copy of KubeDatastore taken before a trial
	// boot: restored if the trial rolls back, removed when it commits
	// (agent/kubeboot). On the same file system as KubeDatastore, so a
	// restore is a rename.
	KubeSnapshot = UpdateDir + "/kube-state.db"
	// APICRLFile is the node API's revocation list as last pushed with
	// POST /v1/crl: on CAIRN-DATA, so it outlives upgrades.
	APICRLFile = StateDir + "/api/" + APICRLName
	// LogDir keeps the services' and cairn-kube's rotated logs.
	LogDir = "/var/log/cairn"
)

// Run-time files (tmpfs, gone at reboot).
const (
	// RunDir is Cairn's directory under /run.
	RunDir = "/run/cairn"
	// ResolvConf is the resolver configuration the agent writes and
	// bind-mounts over the slot's empty /etc/resolv.conf.
	ResolvConf = RunDir + "/resolv.conf"
	// ServicesRunDir holds the services' sd_notify sockets.
	ServicesRunDir = RunDir + "/services"
	// CNIConfDir is where containerd's CRI renders the pod network config.
	CNIConfDir = RunDir + "/cni/net.d"
	// RebootArgFile hands cairn-init the argument of the next reboot: the
	// agent writes it (one line, such as RPiTrybootArg) before it asks PID
	// 1 to reboot, and cairn-init reboots with reboot(2)'s RESTART2 and
	// that argument; without the file, a plain restart (agent/power).
	RebootArgFile = RunDir + "/reboot-arg"
)
