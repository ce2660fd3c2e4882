// Package agent is the in-OS side of Cairn: everything that runs on a node.
// Nothing here is a library for other programs; the folders are the
// architecture:
//
//	cmd/cairn-init     PID 1: mount the slot and CAIRN-DATA, switch root, supervise containerd and the agent
//	cmd/cairn-agent    the node agent: network, clock, system services, node API, Kubernetes
//	contract           the on-disk contract shared with the builder: labels, slots, ESP and state paths
//	config             the node's configuration types (the agent's file, the per-node file)
//	bootloader         A/B boot-loader control; sdboot/ writes a slot's systemd-boot entry
//	supervisor         runs things and restarts them: one policy for host processes, containers, cairn-kube
//	health             the one health model: status, /metrics, console lines and the upgrade gate read it
//	services           system services as containerd tasks (spec, task, readiness, logs)
//	network, clock     links, DHCP, DNS, hostname; SNTP and a clock that never goes back
//	api                the node API over mutual TLS
//	kubeboot, kubepki  the bundled Kubernetes: bring-up, manifests, its PKI
//	boot/…             what cairn-init needs before the switch: cmdline, block devices, data file system
//	kube/              cairn-kube, its own Go module (upstream Kubernetes in one process)
//
// Where to look: a slot's boot entry is written in bootloader/sdboot
// (install.go, arm.go, commit.go); the node decides it is healthy in
// health; a service is restarted by supervisor (services/task.go is its
// runner for containers); docs/code-map.md has the whole table.
package agent
