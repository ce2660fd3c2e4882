package contract

// Network boot (a PXE bundle, cairn build --format pxe). A network-booted
// node has no disk of its own to boot from: the boot server hands its
// firmware a kernel and two initramfs archives, Cairn's and one holding
// only the slot's squashfs, which the kernel unpacks over each other.
// cairn-init then mounts the slot from that file (through a loop
// device, so loop is one of the board's bootModules) and /var on a
// tmpfs.
const (
	// MediaParam is the kernel command line parameter saying where the
	// slot comes from: MediaRAM, or absent for the slot partition.
	MediaParam = "cairn.media"
	// MediaRAM is MediaParam's value for a slot carried in the initramfs.
	MediaRAM = "ram"
	// RAMSlotFile is the slot's squashfs in the unpacked initramfs.
	RAMSlotFile = "slot.squashfs"
	// LoopModule is the module a RAM slot is mounted through.
	LoopModule = "loop"
)

// The PXE bundle: a directory per Go architecture, each with the files
// below and NetbootManifest, which cairn serve reads.
const (
	// NetbootManifest describes an architecture's boot: its JSON is
	// builder/netboot.Manifest.
	NetbootManifest = "netboot.json"
	// NetbootKernel, NetbootInitrd and NetbootSlotInitrd are the kernel,
	// Cairn's initramfs and the initramfs holding RAMSlotFile.
	NetbootKernel     = "vmlinuz"
	NetbootInitrd     = "initramfs"
	NetbootSlotInitrd = "slot.cpio"
)

// MediaOption is the command line option of a slot carried in RAM.
const MediaOption = MediaParam + "=" + MediaRAM
