package supervisor

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// A socket nobody listens on is explained by the WhenGone hook, whose typed
// error reaches the caller intact; without the hook it is a transport error.
func TestDialGoneSupervisor(t *testing.T) {
	dir := t.TempDir()
	refusing := filepath.Join(dir, "refusing.sock")
	l, err := net.Listen("unix", refusing)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nothing accepts: ECONNREFUSED, as after kill -9
	for name, sock := range map[string]string{"refused": refusing, "missing": filepath.Join(dir, "none.sock")} {
		t.Run(name, func(t *testing.T) {
			stopped := errdefs.New(errdefs.ErrFailedPrecondition, "workspace_stopped", "stopped")
			_, err := Dial(sock).WhenGone(func() error { return stopped }).Status(t.Context())
			if errdefs.CodeOf(err) != "workspace_stopped" {
				t.Errorf("with hook: %v", err)
			}
			_, err = Dial(sock).WhenGone(func() error { return nil }).Status(t.Context())
			if errdefs.CodeOf(err) != "supervisor_unavailable" {
				t.Errorf("hook declines: %v", err)
			}
			_, err = Dial(sock).Status(t.Context())
			if errdefs.CodeOf(err) != "supervisor_unavailable" {
				t.Errorf("no hook: %v", err)
			}
		})
	}
}

// A missing pyro binary is a typed error that says how to provide one.
func TestLaunchWithoutPyroBinary(t *testing.T) {
	dir := t.TempDir()
	for _, bin := range []string{filepath.Join(dir, "no-such-pyro"), "no-such-pyro-on-path"} {
		_, err := Launch(t.Context(), bin, filepath.Join(dir, "spec.json"), filepath.Join(dir, "log"), filepath.Join(dir, "pid"), time.Second)
		if errdefs.CodeOf(err) != errdefs.CodeHostToolMissing || !strings.Contains(err.Error(), "PYRO_BIN") {
			t.Errorf("%s: %v", bin, err)
		}
	}
}
