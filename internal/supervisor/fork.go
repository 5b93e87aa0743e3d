package supervisor

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// ForkRequest asks a running workspace's supervisor to save its machine for
// forks while it goes on running (POST /v1/fork).
type ForkRequest struct {
	// StatePath receives the saved machine (memory and devices).
	StatePath string `json:"state_path"`
	// NewTop is an empty disk over the current disk file (made by the host
	// in the workspace's dir, named TopPrefix+...): the machine writes
	// there from the save on; it becomes the disk file too (a second name,
	// by rename) before the guest goes on. QEMU may reopen it by its own
	// name while it runs: it goes at the next start (RemoveStaleTops).
	NewTop string `json:"new_top"`
}

// forkSave saves the machine into req.StatePath for forks; the guest is
// stopped only for the save and the source's agent session, shells and
// calls go on. The answer carries what a fork's restore needs from the
// host side (published ports) and the state's size.
func (s *server) forkSave(ctx context.Context, req ForkRequest) (*Paused, error) {
	dir := filepath.Dir(s.spec.OverlayPath)
	if !filepath.IsAbs(req.StatePath) || filepath.Dir(req.NewTop) != dir || !strings.HasPrefix(filepath.Base(req.NewTop), TopPrefix(s.spec.OverlayPath)) {
		return nil, errdefs.InvalidArgument("fork", "the state path must be absolute and the new disk top a file of the workspace's dir")
	}
	if s.pauser.isPausing() {
		return nil, errdefs.New(errdefs.ErrUnavailable, CodePausing, "the workspace is being paused: fork it once it is paused")
	}
	// One at a time (the workspace lock already makes it so).
	s.forkMu.Lock()
	defer s.forkMu.Unlock()
	start := time.Now()
	meta := &Paused{Ports: s.ports.saved()}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	swap := func() error {
		tmp := s.spec.OverlayPath + ".swap"
		_ = os.Remove(tmp)
		if err := os.Link(req.NewTop, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.spec.OverlayPath); err != nil {
			os.Remove(tmp)
			return err
		}
		return fsutil.SyncDir(dir)
	}
	if err := s.vm.ForkSave(ctx, req.StatePath, req.NewTop, swap); err != nil {
		os.Remove(req.StatePath)
		return nil, err
	}
	st, err := os.Stat(req.StatePath)
	if err != nil {
		return nil, err
	}
	meta.StateBytes = st.Size()
	meta.PausedAt = time.Now().UTC()
	meta.PauseMs = time.Since(start).Milliseconds()
	s.log.Info("saved for forks", "ms", meta.PauseMs, "state_bytes", meta.StateBytes)
	return meta, nil
}

// TopPrefix starts the names of the new tops forks give the disk file disk
// (a second name of the disk each while its VMM runs).
func TopPrefix(disk string) string { return filepath.Base(disk) + ".top-" }

// RemoveStaleTops removes the second names of disk that earlier fork saves
// left (see ForkRequest.NewTop): a VMM that starts opens the disk by its
// own name.
func RemoveStaleTops(disk string) {
	tops, _ := filepath.Glob(filepath.Join(filepath.Dir(disk), TopPrefix(disk)+"*"))
	for _, t := range tops {
		_ = os.Remove(t)
	}
}

func (s *server) handleFork(w http.ResponseWriter, r *http.Request) {
	var req ForkRequest
	if !s.decode(w, r, &req) {
		return
	}
	meta, err := s.forkSave(r.Context(), req)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, meta)
}
