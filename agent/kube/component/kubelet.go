package component

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	"k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/eviction"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"
)

// Kubelet runs the kubelet with the command line args until ctx ends. The
// args name its configuration file (--config); flags given besides it win
// over the file, as with the upstream kubelet.
func Kubelet(ctx context.Context, args []string) error {
	// First pass: find --config.
	flags := options.NewKubeletFlags()
	cfg, err := options.NewKubeletConfiguration()
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	if _, err := parseKubelet(flags, cfg, args); err != nil {
		return err
	}
	if flags.KubeletConfigFile != "" {
		if cfg, err = loadKubeletConfig(ctx, flags.KubeletConfigFile); err != nil {
			return err
		}
		// Second pass: flags over the file.
		flags = options.NewKubeletFlags()
		if _, err := parseKubelet(flags, cfg, args); err != nil {
			return err
		}
	}
	if err := options.ValidateKubeletFlags(flags); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates); err != nil {
		return fmt.Errorf("kubelet: feature gates: %w", err)
	}
	if err := validation.ValidateKubeletConfiguration(cfg, utilfeature.DefaultFeatureGate); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	s := &options.KubeletServer{KubeletFlags: *flags, KubeletConfiguration: *cfg}
	deps, err := kubelet.UnsecuredDependencies(ctx, s, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	return kubelet.Run(ctx, s, deps, utilfeature.DefaultFeatureGate)
}

func parseKubelet(flags *options.KubeletFlags, cfg *kubeletconfig.KubeletConfiguration, args []string) (*pflag.FlagSet, error) {
	fs := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	flags.AddFlags(fs)
	options.AddKubeletConfigFlags(fs, cfg)
	return parse("kubelet", []*pflag.FlagSet{fs}, args)
}

func loadKubeletConfig(ctx context.Context, path string) (*kubeletconfig.KubeletConfiguration, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("kubelet: %w", err)
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, path)
	if err != nil {
		return nil, fmt.Errorf("kubelet: config file %s: %w", path, err)
	}
	cfg, err := loader.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubelet: config file %s: %w", path, err)
	}
	if cfg.EvictionHard == nil {
		cfg.EvictionHard = eviction.DefaultEvictionHard
	}
	return cfg, nil
}
