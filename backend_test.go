package pyro_test

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
)

// The VMM backend is picked once, by name, when the client is made: an
// unknown name fails there with a typed error naming the ones there are.
func TestWithBackend(t *testing.T) {
	dirs := []pyro.Option{pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir())}
	if _, err := pyro.New(append(dirs, pyro.WithBackend("qemu"))...); err != nil {
		t.Fatal(err)
	}
	_, err := pyro.New(append(dirs, pyro.WithBackend("firecracker"))...)
	if pyro.ErrorCode(err) != pyro.CodeInvalidArgument || !strings.Contains(err.Error(), "qemu") {
		t.Errorf("unknown backend: %v", err)
	}
	t.Setenv("PYRO_BACKEND", "hyperv")
	if _, err := pyro.New(dirs...); pyro.ErrorCode(err) != pyro.CodeInvalidArgument {
		t.Errorf("PYRO_BACKEND=hyperv: %v", err)
	}
}
