package supervisor

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// BinaryName is the small executable that runs supervisors: it links only
// what a supervisor needs (VMM, agent session, network, egress, broker), so
// each running workspace maps ~12 MiB of it instead of the whole pyro CLI's
// ~18 MiB (docs/architecture.md, "Memory of a running workspace").
const BinaryName = "pyro-supervisor"

// SubcommandName is the argument both binaries take before the spec path:
// `pyro-supervisor __supervise SPEC` and, as the fallback, `pyro __supervise SPEC`.
const SubcommandName = "__supervise"

// Binary returns what runs a supervisor for the pyro binary pyroBin:
// pyro-supervisor beside it when that is an executable file (make build,
// go install .../cmd/... and the packages install both), else pyroBin
// itself in its hidden mode, so that a lone `go install .../cmd/pyro`
// still works.
func Binary(pyroBin string) string {
	if !filepath.IsAbs(pyroBin) && filepath.Base(pyroBin) == pyroBin {
		return pyroBin // a bare name found on PATH at start: nothing beside it to look at
	}
	p := filepath.Join(filepath.Dir(pyroBin), BinaryName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return p
	}
	return pyroBin
}

// Serve is the whole of a supervisor process (pyro-supervisor's main and
// pyro's hidden __supervise mode): it logs to stderr, reads its ready pipe
// from fd 3 and runs Main.
func Serve(specPath string, stderr io.Writer) error {
	ready := os.NewFile(3, "ready") // the launcher's pipe
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := Main(specPath, ready, log); err != nil {
		log.Error("supervisor", "err", err)
		return err
	}
	return nil
}
