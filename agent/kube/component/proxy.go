package component

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
)

// KubeProxy runs kube-proxy with the command line args until ctx ends.
func KubeProxy(ctx context.Context, args []string) error {
	opts := proxy.NewOptions()
	raw := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	opts.AddFlags(raw)
	fs, err := parse("kube-proxy", []*pflag.FlagSet{raw}, args)
	if err != nil {
		return err
	}
	if err := opts.Complete(fs); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("kube-proxy: %w", err)
	}
	return opts.Run(ctx)
}
