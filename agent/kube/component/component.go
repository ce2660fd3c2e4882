// Package component runs the upstream Kubernetes components as goroutines
// of this process: kube-apiserver, kube-controller-manager, kube-scheduler,
// the kubelet and kube-proxy, each from its own command line.
//
// It does what each upstream cobra command's RunE does (options, flags,
// validation, Run) but with the caller's context: the upstream commands
// each install the process's signal handler, which may happen once per
// process (a second call panics), and some exit the process on error.
// Process-wide state (logging, feature gates, the signal handler) belongs to
// the caller: see Setup.
package component

import (
	"fmt"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// Setup applies the process-wide logging configuration, at verbosity v.
// Call it once, before any component starts.
func Setup(v int) error {
	c := logsapi.NewLoggingConfiguration()
	c.Verbosity = logsapi.VerbosityLevel(v)
	// Every component would apply its own (identical) logging settings;
	// here only Setup does, and anything else is an error.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	if err := logsapi.ValidateAndApply(c, utilfeature.DefaultFeatureGate); err != nil {
		return fmt.Errorf("logging: %w", err)
	}
	return nil
}

// parse parses args into the named flag sets of a component.
func parse(name string, sets []*pflag.FlagSet, args []string) (*pflag.FlagSet, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	for _, s := range sets {
		fs.AddFlagSet(s)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %w (check extraArgs[%s] in the config file)", name, err, name)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q (check extraArgs[%s] in the config file)", name, fs.Arg(0), name)
	}
	return fs, nil
}

func named(n cliflag.NamedFlagSets) []*pflag.FlagSet {
	var sets []*pflag.FlagSet
	for _, name := range n.Order {
		sets = append(sets, n.FlagSets[name])
	}
	return sets
}
