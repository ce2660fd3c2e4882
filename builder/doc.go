// Package builder is the workstation side of Cairn: the cairn CLI and the
// packages that turn an image spec and a board into images. A build runs
// in four steps, each a package:
//
//	spec      parse and validate images/*.yaml and boards/*.yaml (errors name file:line and the fix)
//	plan      resolve the inputs (source: registries, OCI layouts, tarballs, by digest) and decide
//	          what goes where: slot tree, initramfs, boot files per slot, partition table; no output I/O
//	firmware  one part per board family (uefi today): partition rules and the boot partition,
//	          written through agent/bootloader, the code the node upgrades with
//	output    one writer per --format (raw today): squashfs, cpio, FAT and GPT, block map
//
// build runs the four and moves the outputs into place only once all are
// written. cmd/cairn holds the verbs (build, validate, node, input);
// docs/code-map.md has the whole table.
package builder
