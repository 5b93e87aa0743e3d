//go:build linux

package agent

import (
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
