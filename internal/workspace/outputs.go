package workspace

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/vm"
)

// An export builds its output under a temporary name beside it, in a host
// directory the caller named. A pyro process killed meanwhile (kill -9)
// cannot remove it, so the export records its name in the workspace's dir
// before creating it; the next pyro call that tidies workspaces removes it
// once its owner is dead (a record whose temporary was never made costs a
// no-op removal).

// outputTempRE is every name hostpath.TempName gives an export.
var outputTempRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\.pyro-(disk-)?export-[0-9a-f]{16}$`) })

type outputTemp struct {
	Dir      string `json:"dir"`  // the output's parent, absolute
	Name     string `json:"name"` // the temporary in it
	Pid      int    `json:"pid"`  // the process building it
	PidStart uint64 `json:"pid_start"`
}

// trackOutputTemp records the temporary name of out's output, before the
// temporary is made; the returned func forgets it (after the temporary was
// published or removed: defer it before the removal, so it runs after).
func trackOutputTemp(p Paths, out *hostpath.Target, name string) (forget func(), err error) {
	rec := outputTemp{Dir: filepath.Dir(out.Path), Name: name, Pid: os.Getpid(), PidStart: vm.ProcStart(os.Getpid())}
	if err := os.MkdirAll(p.OutputsDir(), 0o700); err != nil {
		return nil, err
	}
	at := filepath.Join(p.OutputsDir(), name+".json")
	if err := fsutil.WriteJSONAtomic(at, rec, 0o600); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(at) }, nil
}

// removeDeadOutputTemps removes the temporaries of exports whose process
// died. Only names an export gives are removed, through the parent
// directory's handle (a name swapped for a symlink is removed, never followed).
func removeDeadOutputTemps(p Paths) {
	entries, _ := os.ReadDir(p.OutputsDir())
	for _, e := range entries {
		at := filepath.Join(p.OutputsDir(), e.Name())
		b, err := os.ReadFile(at)
		var rec outputTemp
		if err != nil || json.Unmarshal(b, &rec) != nil || !strings.HasSuffix(e.Name(), ".json") {
			_ = os.Remove(at)
			continue
		}
		if vm.Alive(rec.Pid, rec.PidStart) {
			continue
		}
		if outputTempRE().MatchString(rec.Name) && filepath.IsAbs(rec.Dir) {
			if dir, err := os.OpenRoot(rec.Dir); err == nil {
				_ = dir.RemoveAll(rec.Name)
				dir.Close()
			}
		}
		_ = os.Remove(at)
	}
}
