package env

import (
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestBuildNamesAndDefinitions(t *testing.T) {
	for _, ok := range []string{"node22", "my-env", "team.tools_1", "proj:v2", "envfile-0123456789ab"} {
		if err := ValidateBuildName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "debian:12", "Node", "a/b", "-x", "x:", "registry.example.com/x:1", "oci-layout:/tmp/x", "a b"} {
		if err := ValidateBuildName(bad); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("%q: %v, want invalid_argument", bad, err)
		}
	}
	for _, bad := range []BuildDef{{}, {From: "debian:12"}, {From: "debian:12", Steps: []string{" "}}, {From: "debian:12", Steps: []string{"true"}, DiskSize: -1}} {
		if err := bad.Validate(); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("%+v: %v, want invalid_argument", bad, err)
		}
	}
}

// The key covers the base's image, the steps in order, network and disk
// size, and nothing else.
func TestBuildKey(t *testing.T) {
	base := &Manifest{Rootfs: RootfsInfo{SHA256: "aa"}}
	def := BuildDef{From: "debian:12", Steps: []string{"a", "b"}}
	k := BuildKey(def, base)
	same := def
	same.EnvFile, same.StepTimeoutSeconds, same.VCPUCount, same.From = "/x/.pyro/environment.toml", 60, 2, "other-name-same-image"
	if BuildKey(same, base) != k {
		t.Error("the key depends on what does not change the image")
	}
	for name, d := range map[string]BuildDef{
		"order":   {Steps: []string{"b", "a"}},
		"network": {Steps: []string{"a", "b"}, Network: true},
		"disk":    {Steps: []string{"a", "b"}, DiskSize: 1 << 30},
	} {
		if BuildKey(d, base) == k {
			t.Errorf("%s does not change the key", name)
		}
	}
	if BuildKey(def, &Manifest{Rootfs: RootfsInfo{SHA256: "bb"}}) == k {
		t.Error("another base image does not change the key")
	}
}
