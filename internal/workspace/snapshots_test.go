package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vmm/backends"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

type tarEntry = testutil.TarEntry

// The snapshot path takes the guest's archive through archive.Extract: a
// hostile or oversized stream is refused, nothing lands outside the temp
// dir, and the temp dir goes on every path.
func TestSnapshotFromStreamValidates(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		entries []tarEntry
		lim     archive.Limits
		code    string
	}{
		{"dotdot", []tarEntry{{Header: tar.Header{Name: "../escape", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "x"}}, archive.Limits{}, archive.CodePathOutsideWorkspace},
		{"absolute", []tarEntry{{Header: tar.Header{Name: "/etc/evil", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "x"}}, archive.Limits{}, archive.CodePathOutsideWorkspace},
		{"through symlink", []tarEntry{
			{Header: tar.Header{Name: "link", Linkname: "/", Typeflag: tar.TypeSymlink}, Body: ""},
			{Header: tar.Header{Name: "link/tmp/evil", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "x"},
		}, archive.Limits{}, archive.CodePathOutsideWorkspace},
		{"device", []tarEntry{{Header: tar.Header{Name: "dev", Mode: 0o644, Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, Body: ""}}, archive.Limits{}, archive.CodeBadArchive},
		{"too many bytes", []tarEntry{{Header: tar.Header{Name: "big", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "0123456789abcdef"}}, archive.Limits{MaxBytes: 8}, archive.CodeTooLarge},
		{"too many entries", []tarEntry{
			{Header: tar.Header{Name: "a", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "a"},
			{Header: tar.Header{Name: "b", Mode: 0o644, Typeflag: tar.TypeReg}, Body: "b"},
		}, archive.Limits{MaxEntries: 1}, archive.CodeTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			var out bytes.Buffer
			_, err := snapshotFromStream(ctx, testutil.Tar(t, tc.entries...), filepath.Join(work, ".s.tar.tmp.d"), &out, tc.lim)
			if got := errdefs.CodeOf(err); got != tc.code {
				t.Fatalf("err = %v (code %q), want %s", err, got, tc.code)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("left in the work dir: %v", left)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(work), "escape")); err == nil {
				t.Error("an entry escaped")
			}
		})
	}
}

// A good stream comes out normalized (sorted, no "./", uid 0) with its stats.
func TestSnapshotFromStreamNormalizes(t *testing.T) {
	work := t.TempDir()
	in := testutil.Tar(t,
		tarEntry{Header: tar.Header{Name: "./", Mode: 0o755, Typeflag: tar.TypeDir}, Body: ""},
		tarEntry{Header: tar.Header{Name: "./src/", Mode: 0o755, Typeflag: tar.TypeDir}, Body: ""},
		tarEntry{Header: tar.Header{Name: "./src/b.txt", Mode: 0o644, Uid: 1000, Uname: "user", Typeflag: tar.TypeReg}, Body: "bee\n"},
		tarEntry{Header: tar.Header{Name: "./a.sh", Mode: 0o4755, Typeflag: tar.TypeReg}, Body: "#!/bin/sh\n"},
		tarEntry{Header: tar.Header{Name: "./l", Linkname: "a.sh", Typeflag: tar.TypeSymlink}, Body: ""},
	)
	var out bytes.Buffer
	st, err := snapshotFromStream(context.Background(), in, filepath.Join(work, ".s.tar.tmp.d"), &out, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 4 || st.Bytes != 14 {
		t.Errorf("stats %+v", st)
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Uname != "" || h.Mode&^0o1777 != 0 {
			t.Errorf("%s not normalized: uid %d %q mode %o", h.Name, h.Uid, h.Uname, h.Mode)
		}
		names = append(names, h.Name)
	}
	if want := []string{"a.sh", "l", "src", "src/b.txt"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left in the work dir: %v", left)
	}
}

func TestValidateSnapshotName(t *testing.T) {
	for _, ok := range []string{"s1", "before-refactor", "v1.2_x"} {
		if err := ValidateSnapshotName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "baseline", "Baseline", "a/b", "..", "../x", ".hidden", "-x", "a b", string(make([]byte, 64))} {
		if err := ValidateSnapshotName(bad); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
			t.Errorf("%q: %v, want invalid_argument", bad, err)
		}
	}
}

// Two creates of one name at once: the second is refused while the first
// holds the reservation, and a released reservation (a crashed create)
// does not block the name.
func TestReserveSnapshotIsExclusive(t *testing.T) {
	m, p := stoppedWorkspace(t)
	f, err := m.reserveSnapshot(p, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.reserveSnapshot(p, "s1"); errdefs.CodeOf(err) != CodeSnapshotExists {
		t.Fatalf("second reservation: %v", err)
	}
	f.Close() // as if its process died: the temp file stays, the flock goes
	g, err := m.reserveSnapshot(p, "s1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	g.Close()
}

// What a snapshot create killed with -9 leaves (its temp file, no longer
// flocked, and its extraction dir) goes at the next tidy pass; a create
// that is alive keeps its flock and its files.
func TestTidyRemovesDeadSnapshotTemps(t *testing.T) {
	m, p := stoppedWorkspace(t)
	dead, err := m.reserveSnapshot(p, "dead")
	if err != nil {
		t.Fatal(err)
	}
	live, err := m.reserveSnapshot(p, "live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	for _, f := range []*os.File{dead, live} {
		if err := os.MkdirAll(filepath.Join(f.Name()+store.ExtractDirSuffix, "src"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	orphan := filepath.Join(p.SnapshotDir(), ".gone"+store.SnapshotTmpSuffix+store.ExtractDirSuffix)
	if err := os.Mkdir(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	dead.Close() // its process died: the flock goes with it

	if _, _, err := m.Tidy(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{dead.Name(), dead.Name() + store.ExtractDirSuffix, orphan} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", gone, err)
		}
	}
	for _, kept := range []string{live.Name(), live.Name() + store.ExtractDirSuffix} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("a live create lost %s: %v", kept, err)
		}
	}
}

// stoppedWorkspace is a manager with one stopped workspace record (no VM).
func stoppedWorkspace(t *testing.T) (*Manager, Paths) {
	t.Helper()
	m := NewManager(t.TempDir(), "pyro", backends.Default(), slog.New(slog.DiscardHandler))
	p := m.paths("0123456789ab")
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteRecord(p, &Record{ID: "0123456789ab", State: StateStopped}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Lock(), nil, 0o600); err != nil { // as Create makes it
		t.Fatal(err)
	}
	return m, p
}
