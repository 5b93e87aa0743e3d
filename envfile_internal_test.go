package pyro

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestParseEnvFile(t *testing.T) {
	body := "from = \"debian:12\"\nnetwork = true\ndisk_size_mib = 2048\nsteps = [\"apt-get update\", \"true\"]\n"
	f, err := parseEnvFile("e.toml", []byte(body))
	if err != nil || f.From != "debian:12" || !f.Network || f.DiskSize != 2048<<20 || len(f.Steps) != 2 || !strings.HasPrefix(f.Name, "envfile-") || len(f.Name) != len("envfile-")+12 {
		t.Fatalf("%v %+v", err, f)
	}
	g, _ := parseEnvFile("e.toml", []byte(body+"# a comment\n"))
	if g.Name == f.Name {
		t.Error("an edited file keeps its name")
	}
	for _, bad := range []string{"", "steps = [\"x\"]", "from = \"debian:12\"", "from = \"debian:12\"\nsteps = [\"x\"]\nimage = 1", "from = [", "from = \"debian:12\"\nsteps = [\"x\"]\ndisk_size_mib = -1"} {
		if _, err := parseEnvFile("e.toml", []byte(bad)); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
