package vmm

import (
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/f", VCPUs: 1, MemMiB: 512, Accel: AccelTCG}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Config){
		"vcpu_count":   func(c *Config) { c.VCPUs = 0 },
		"mem_mib":      func(c *Config) { c.MemMiB = MaxMemMiB + 1 },
		"accel":        func(c *Config) { c.Accel = "hvf" },
		"overlay_path": func(c *Config) { c.DiskMode = DiskOverlay },
		"environment":  func(c *Config) { c.KernelPath = "" },
		"restore":      func(c *Config) { c.Restore = &Restore{StatePath: "/s"} },
	}
	for field, mutate := range bad {
		c := ok
		mutate(&c)
		err := c.Validate()
		if !errdefs.IsInvalidArgument(err) || errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("%s: err = %v", field, err)
		}
	}
}
