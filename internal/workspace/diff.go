package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/wsdiff"
)

// diffLimits bound what a diff reads from the guest.
var diffLimits = wsdiff.Limits{MaxBytes: 256 << 20, MaxTextBytes: 1 << 20}

// Diff compares /workspace now with the create-time baseline.
func (m *Manager) Diff(ctx context.Context, ref string) (*Record, *DiffResult, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	res, err := m.diff(ctx, r, sc)
	return r, res, err
}

// DiffResult is a diff and the special files of /workspace it could not
// compare (they are in no archive).
type DiffResult struct {
	*wsdiff.Result
	Skipped Skipped
}

// diff compares /workspace with the baseline; secret values are redacted.
func (m *Manager) diff(ctx context.Context, r *Record, sc *supervisor.Client) (*DiffResult, error) {
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, err
	}
	base, err := os.Open(m.paths(r.ID).Baseline())
	if err != nil {
		return nil, err
	}
	defer base.Close()
	pr, pw := io.Pipe()
	got := make(chan *supervisor.ArchiveResult, 1)
	go func() {
		gres, err := sc.GetArchive(ctx, Root, diffLimits.MaxBytes, pw)
		pw.CloseWithError(err)
		got <- gres
	}()
	res, err := wsdiff.Compare(base, pr, diffLimits)
	pr.CloseWithError(io.ErrClosedPipe)
	gres := <-got
	if err != nil {
		return nil, red.Error(err)
	}
	redactDiff(res, red)
	return &DiffResult{Result: res, Skipped: skippedOf(gres, red)}, nil
}

// PatchResult says what a patch changed.
type PatchResult struct {
	Changed []string `json:"changed"` // paths relative to /workspace
}

// PatchApply validates a unified diff against the current files on the host
// and applies it all-or-nothing: if any hunk does not apply, nothing changes.
func (m *Manager) PatchApply(ctx context.Context, ref, patch string) (*Record, *PatchResult, error) {
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer sc.Close()
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, nil, err
	}
	res, err := m.patchApply(ctx, r, sc, patch)
	// Hunks that do not apply are quoted in the error: they may hold values.
	return r, res, red.Error(err)
}

func (m *Manager) patchApply(ctx context.Context, r *Record, sc *supervisor.Client, patch string) (*PatchResult, error) {
	paths, err := wsdiff.Paths(patch)
	if err != nil {
		return nil, err
	}
	current := map[string]fileState{}
	for _, p := range paths {
		st, err := m.readForPatch(ctx, sc, p)
		if err != nil {
			return nil, err
		}
		current[p] = st
	}
	plan, err := wsdiff.Plan(patch, func(p string) ([]byte, os.FileMode, bool, error) {
		st, ok := current[p]
		if !ok {
			s, err := m.readForPatch(ctx, sc, p)
			if err != nil {
				return nil, 0, false, err
			}
			st = s
		}
		return st.content, st.mode, st.exists, nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.writePlan(ctx, sc, plan); err != nil {
		return nil, err
	}
	changed := append([]string(nil), plan.Changed...)
	sort.Strings(changed)
	return &PatchResult{Changed: changed}, m.touch(r.ID)
}

type fileState struct {
	content []byte
	mode    os.FileMode
	exists  bool
}

const patchFileMax = 16 << 20

func (m *Manager) readForPatch(ctx context.Context, sc *supervisor.Client, rel string) (fileState, error) {
	gp, err := GuestPath("patch", rel)
	if err != nil {
		return fileState{}, err
	}
	var buf bytes.Buffer
	if _, err := sc.GetArchive(ctx, gp, patchFileMax, &limitedBuffer{b: &buf, max: patchFileMax + 64<<10}); err != nil {
		if errdefs.IsNotFound(err) {
			return fileState{}, nil
		}
		return fileState{}, err
	}
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil || h.Typeflag != tar.TypeReg {
		return fileState{}, errdefs.InvalidArgument("patch", "%s is not a regular file in the workspace", rel)
	}
	b, err := io.ReadAll(io.LimitReader(tr, patchFileMax))
	return fileState{content: b, mode: os.FileMode(h.Mode).Perm(), exists: true}, err
}

// writePlan writes every new file and removes the deleted ones in one put,
// which the guest agent applies all or nothing, also across a crash.
func (m *Manager) writePlan(ctx context.Context, sc *supervisor.Client, plan *wsdiff.PatchResult) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var deletes []string
	for _, f := range plan.Files {
		rel := strings.TrimPrefix(f.Path, "/")
		if _, err := GuestPath("patch", rel); err != nil {
			return err
		}
		if f.Delete {
			deletes = append(deletes, rel)
			continue
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: int64(mode), Size: int64(len(f.Content)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if len(plan.Files) == 0 {
		return nil
	}
	if agentproto.RemoveSize(deletes) > agentproto.MaxRemoveBytes {
		return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge,
			"the patch deletes %d files, more than one apply takes (their paths are over %d bytes): split it into several patches", len(deletes), agentproto.MaxRemoveBytes)
	}
	_, err := sc.PutArchive(ctx, Root, deletes, &buf)
	var e *errdefs.Error
	if errors.As(err, &e) && e.Code == errdefs.CodeNotFound && len(deletes) > 0 {
		// A file the patch deletes went away since it was read.
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodePatchFailed,
			"a file the patch deletes is gone since the patch was checked; nothing was changed: look at the workspace and apply the patch again (%s)", e.Message)
	}
	return err
}

// Summary is a workspace at a glance.
type Summary struct {
	Changes      []wsdiff.Change `json:"changes"`
	Added        int             `json:"added"`
	Modified     int             `json:"modified"`
	Deleted      int             `json:"deleted"`
	LastCommands []HistoryEntry  `json:"last_commands"`
}

// Summarize reports changes since the baseline (when running) and the last
// commands.
func (m *Manager) Summarize(ctx context.Context, ref string) (*Record, *Summary, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	s := &Summary{Changes: []wsdiff.Change{}}
	if m.liveState(ctx, r) == StateRunning {
		sc := supervisor.Dial(m.paths(r.ID).Socket())
		defer sc.Close()
		res, err := m.diff(ctx, r, sc)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range res.Changes {
			c.Diff = "" // the summary names files; workspace diff shows them
			s.Changes = append(s.Changes, c)
		}
		s.Added, s.Modified, s.Deleted = res.Added, res.Modified, res.Deleted
	}
	_, hist, err := m.Logs(r.ID)
	if err != nil {
		return nil, nil, err
	}
	if len(hist) > 5 {
		hist = hist[len(hist)-5:]
	}
	s.LastCommands = append([]HistoryEntry{}, hist...)
	r.State = m.liveState(ctx, r)
	return r, s, nil
}
