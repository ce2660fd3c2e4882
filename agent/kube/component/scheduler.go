package component

import (
	"context"
	"fmt"

	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// Scheduler runs kube-scheduler with the command line args until ctx ends.
func Scheduler(ctx context.Context, args []string) error {
	opts := options.NewOptions()
	if _, err := parse("kube-scheduler", named(*opts.Flags), args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	cc, sched, err := scheduler.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	return scheduler.Run(ctx, cc, sched)
}
