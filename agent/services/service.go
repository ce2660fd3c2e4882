// Package services runs Cairn's system services as containers in
// containerd's "cairn.system" namespace, for the node agent.
//
// A config.Service says what to run; a Manager imports each service's image
// from the OCI layout baked into the slot (so a node boots with no network),
// starts the services in dependency order (ready.go), waits for each to be
// ready, runs each as a containerd task (task.go, spec.go) under the one
// restart policy of agent/supervisor, and keeps their output (logs.go):
//
//	m, err := services.NewManager(svcs, services.Options{})
//	if err != nil { ... }           // invalid services
//	err = m.Start(ctx)               // every service started and ready, or why not
//	for _, st := range m.List() { ... }
//	rc, _ := m.Logs("ntpd", true, 0) // follow a service's output
//	m.Stop(ctx)
//
// A crash-looping service is visible in its Status and never takes the agent
// down. The Manager survives containerd restarts: containers keep running
// under their shims, and it reconnects and waits on them again.
package services

// Namespace is the containerd namespace system services run in.
const Namespace = "cairn.system"
