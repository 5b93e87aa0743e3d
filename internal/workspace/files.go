package workspace

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// Root is /workspace in the guest.
const Root = "/workspace"

// GuestPath turns a user path (relative to /workspace, or absolute under
// it) into a clean absolute guest path (guestexec.GuestPath).
var GuestPath = guestexec.GuestPath

// SyncPush copies a host directory or archive into the running workspace
// (default destination /workspace), overwriting files of the same name.
func (m *Manager) SyncPush(ctx context.Context, ref string, src *hostpath.Source, dest string) (*Record, archive.Stats, error) {
	dst, err := GuestPath("dest", dest)
	if err != nil {
		return nil, archive.Stats{}, err
	}
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, archive.Stats{}, err
	}
	defer sc.Close()
	pr, pw := io.Pipe()
	var stats archive.Stats
	go func() {
		var err error
		stats, err = seedSource(ctx, src, pw)
		pw.CloseWithError(err)
	}()
	_, err = sc.PutArchive(ctx, dst, nil, pr)
	pr.CloseWithError(io.ErrClosedPipe) // stop the packer if the put failed early
	if err != nil {
		return nil, stats, err
	}
	return r, stats, m.touch(r.ID)
}

// touch records activity (reads do not count).
func (m *Manager) touch(id string) error {
	_, err := m.recordActivity(id, func(rec *Record) (int, error) {
		rec.LastActivityAt = time.Now().UTC()
		return 0, nil
	})
	return err
}

// Export copies a guest file or directory out to a new host path. The
// guest's archive is extracted (validated) into a temp dir beside the
// output and renamed into place without replacing anything, so a failure
// leaves nothing behind.
func (m *Manager) Export(ctx context.Context, ref, guest string, out *hostpath.Target) (*Record, archive.Stats, Skipped, error) {
	r, st, err := m.export(ctx, ref, guest, out)
	return r, st.stats, st.skipped, err
}

type exported struct {
	stats   archive.Stats
	skipped Skipped
}

func (m *Manager) export(ctx context.Context, ref, guest string, out *hostpath.Target) (*Record, exported, error) {
	src, err := GuestPath("path", guest)
	if err != nil {
		return nil, exported{}, err
	}
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, exported{}, err
	}
	defer sc.Close()
	isDir, err := guestIsDir(ctx, sc, src, guest)
	if err != nil {
		return nil, exported{}, err
	}
	tmpName := hostpath.TempName(".pyro-export-")
	forget, err := trackOutputTemp(m.paths(r.ID), out, tmpName)
	if err != nil {
		return nil, exported{}, err
	}
	defer forget()
	tmp, err := out.MkdirTemp(tmpName)
	if err != nil {
		return nil, exported{}, err
	}
	defer out.RemoveTemp(tmpName)
	defer tmp.Close()
	pr, pw := io.Pipe()
	type result struct {
		stats archive.Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := archive.ExtractTo(ctx, pr, tmp, archive.Limits{})
		pr.CloseWithError(err)
		done <- result{st, err}
	}()
	gres, gerr := sc.GetArchive(ctx, src, 0, pw)
	pw.CloseWithError(gerr)
	res := <-done
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, exported{stats: res.stats}, err
	}
	if err := errors.Join(gerr, res.err); err != nil {
		// Archive errors quote entry names the guest sent.
		return nil, exported{stats: res.stats}, red.Error(firstTyped(gerr, res.err))
	}
	ex := exported{stats: res.stats, skipped: skippedOf(gres, red)}
	if err := redactTree(tmp, red); err != nil {
		return nil, ex, err
	}
	// A directory's entries are relative to it; a file arrives under its base name.
	from := tmpName
	if !isDir {
		from = tmpName + "/" + path.Base(src)
	}
	if err := out.Publish(from); err != nil {
		return nil, ex, err
	}
	return r, ex, nil
}

func firstTyped(errs ...error) error {
	for _, e := range errs {
		var te *errdefs.Error
		if errors.As(e, &te) {
			return e
		}
	}
	return errors.Join(errs...)
}

// FileRead returns the content of one guest file, refusing files larger
// than maxBytes.
func (m *Manager) FileRead(ctx context.Context, ref, guest string, maxBytes int64) ([]byte, error) {
	src, err := GuestPath("path", guest)
	if err != nil {
		return nil, err
	}
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	red, err := m.redactor(r.ID)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := sc.GetArchive(ctx, src, maxBytes, &limitedBuffer{b: &buf, max: maxBytes + 64<<10}); err != nil {
		if errdefs.CodeOf(err) == errdefs.CodeTooLarge {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge,
				"%s is larger than max_bytes (%d): raise max_bytes, or read a part with exec (e.g. head -c)", src, maxBytes)
		}
		return nil, err
	}
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil {
		return nil, errdefs.New(errdefs.ErrInternal, errdefs.CodeBadArchive, "the guest sent an empty archive for %s", src)
	}
	if h.Typeflag != tar.TypeReg {
		return nil, errdefs.InvalidArgument("path", "%s is not a regular file: use file list for directories", src)
	}
	if h.Size > maxBytes {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "%s is larger than max_bytes (%d)", src, maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(tr, maxBytes))
	return red.Bytes(b), err
}

// limitedBuffer refuses to grow past max: the guest is not trusted to honour limits.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if int64(l.b.Len()+len(p)) > l.max {
		return 0, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge, "the guest sent more than it was asked for")
	}
	return l.b.Write(p)
}

// FileWrite creates or replaces one guest file with content.
func (m *Manager) FileWrite(ctx context.Context, ref, guest string, content []byte) (*Record, error) {
	dst, err := GuestPath("path", guest)
	if err != nil {
		return nil, err
	}
	if dst == Root {
		return nil, errdefs.InvalidArgument("path", "names /workspace itself: give a file path")
	}
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: path.Base(dst), Mode: 0o644, Size: int64(len(content)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if _, err := sc.PutArchive(ctx, path.Dir(dst), nil, &buf); err != nil {
		return nil, err
	}
	return r, m.touch(r.ID)
}

// guestScript runs a shell snippet on one guest path ($1) after checking
// that it exists (exit 3) and resolves inside /workspace (exit 4), so a
// symlink cannot lead it out.
func guestScript(ctx context.Context, sc *supervisor.Client, guestPath, userPath, body string) (*supervisor.ExecResult, error) {
	script := "set -- " + guestexec.Quote(guestPath) + `
p=$(realpath -e -- "$1") || exit 3
case "$p" in /workspace|/workspace/*) ;; *) exit 4;; esac
` + body
	res, err := sc.Exec(ctx, supervisor.ExecRequest{ExecRequest: guestexec.Shell(script, nil, "", time.Minute, 8<<20)})
	if err != nil {
		return nil, err
	}
	switch res.ExitCode {
	case 3:
		return nil, errdefs.New(errdefs.ErrNotFound, errdefs.CodeNotFound, "%s does not exist in the workspace", guestPath)
	case 4:
		return nil, guestexec.Outside("path", userPath)
	}
	return res, nil
}

// guestIsDir reports whether a guest path is a directory.
func guestIsDir(ctx context.Context, sc *supervisor.Client, guestPath, userPath string) (bool, error) {
	res, err := guestScript(ctx, sc, guestPath, userPath, `[ -d "$p" ] && echo dir || echo other`)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(res.Stdout)) == "dir", nil
}

// FileEntry is one entry of a guest directory listing.
type FileEntry struct {
	Path string `json:"path"` // relative to /workspace
	Type string `json:"type"` // file, dir, symlink, other
	Size int64  `json:"size"`
	Mode string `json:"mode"` // octal permission bits
}

// FileList lists a guest directory (one level, or the whole tree).
func (m *Manager) FileList(ctx context.Context, ref, guest string, recursive bool) ([]FileEntry, error) {
	dir, err := GuestPath("path", guest)
	if err != nil {
		return nil, err
	}
	_, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	depth := "-maxdepth 1"
	if recursive {
		depth = ""
	}
	res, err := guestScript(ctx, sc, dir, guest, `cd "$p" && find . -mindepth 1 `+depth+` -printf '%y\t%s\t%m\t%P\0' | head -c 8388608`)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, errdefs.New(errdefs.ErrInternal, errdefs.CodeInternal, "listing %s failed: %s", dir, strings.TrimSpace(string(res.Stderr)))
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(dir, Root), "/")
	var out []FileEntry
	for _, rec := range bytes.Split(res.Stdout, []byte{0}) {
		f := strings.SplitN(string(rec), "\t", 4)
		if len(f) != 4 || f[3] == "" {
			continue // the guest is not trusted: skip what does not parse
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || strings.Contains(f[3], "..") && strings.Contains("/"+f[3]+"/", "/../") {
			continue
		}
		out = append(out, FileEntry{Path: path.Join(rel, f[3]), Type: fileType(f[0]), Size: size, Mode: f[2]})
	}
	return out, nil
}

func fileType(t string) string {
	switch t {
	case "f":
		return "file"
	case "d":
		return "dir"
	case "l":
		return "symlink"
	}
	return "other"
}
