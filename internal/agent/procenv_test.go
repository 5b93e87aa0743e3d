//go:build linux

package agent

import (
	"os"
	"slices"
	"testing"
)

func TestBuildEnvOverridesByKey(t *testing.T) {
	env, err := buildEnv([]string{"TERM=xterm", "A=1", "A=2", "EMPTY="})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{defaultEnv[0], defaultEnv[1], "TERM=xterm", defaultEnv[3], defaultEnv[4], "A=2", "EMPTY="}
	if !slices.Equal(env, want) {
		t.Errorf("got %q, want %q", env, want)
	}
	if _, err := buildEnv([]string{"=x"}); err == nil {
		t.Error("accepted an empty key")
	}
}

func TestLoadImageEnvOverridesDefaults(t *testing.T) {
	saved := defaultEnv
	t.Cleanup(func() { defaultEnv = saved })
	p := t.TempDir() + "/env"
	if err := os.WriteFile(p, []byte("PATH=/opt/tools/bin:/bin\nGREETING=hello\nnot a pair\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loadImageEnv(p)
	env, err := buildEnv([]string{"GREETING=per-call"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(env, "PATH=/opt/tools/bin:/bin") || !slices.Contains(env, "GREETING=per-call") || !slices.Contains(env, "HOME=/root") {
		t.Fatalf("env = %v", env)
	}
	defaultEnv = saved
	loadImageEnv(p + ".missing") // no file: pyro's defaults stay
	if !slices.Equal(defaultEnv, saved) {
		t.Fatalf("defaults changed: %v", defaultEnv)
	}
}
