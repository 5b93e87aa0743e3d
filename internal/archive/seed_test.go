package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// seedTree makes a directory seed with nested dirs, modes, symlinks (one to
// /etc, one to a directory inside) and a fifo.
func seedTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(src, "a/b/c.txt"), []byte("deep"), 0o640))
	must(os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(src, "run.sh"), 0o755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(src, "empty"), nil, 0o600))
	must(os.Mkdir(filepath.Join(src, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(src, "tmp"), 0o777|os.ModeSticky))
	must(os.Chmod(filepath.Join(src, "a/b"), 0o750))
	must(os.Symlink("a/b/c.txt", filepath.Join(src, "rel-link")))
	must(os.Symlink("/etc", filepath.Join(src, "etc-link")))
	must(os.Symlink("a", filepath.Join(src, "dir-link")))
	must(syscall.Mkfifo(filepath.Join(src, "a/pipe"), 0o644))
	for _, p := range []string{"a/b/c.txt", "run.sh", "empty"} {
		must(os.Chtimes(filepath.Join(src, p), testTime, testTime))
	}
	return src
}

func TestSeedDirectory(t *testing.T) {
	src := seedTree(t)
	var out bytes.Buffer
	st, err := Seed(context.Background(), src, &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	hs := readTar(t, out.Bytes())
	want := []string{"a", "a/b", "a/b/c.txt", "dir-link", "empty", "etc-link", "rel-link", "run.sh", "tmp"}
	if !slices.Equal(names(hs), want) {
		t.Fatalf("entries %q, want %q (sorted, normalized, no fifo, links not followed)", names(hs), want)
	}
	if st.Entries != len(want) || st.Bytes != int64(len("deep")+len("#!/bin/sh\n")) {
		t.Errorf("stats %+v", st)
	}
	if len(st.Skipped) != 1 || st.Skipped[0].Path != "a/pipe" || !strings.Contains(st.Skipped[0].Reason, "fifo") {
		t.Errorf("skipped %+v, want the fifo a/pipe", st.Skipped)
	}
	for _, h := range hs {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q, want 0/0 and empty names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
	}
	checks := map[string]hdr{
		"a/b":       {Type: tar.TypeDir, Mode: 0o750},
		"tmp":       {Type: tar.TypeDir, Mode: 0o1777},
		"a/b/c.txt": {Type: tar.TypeReg, Mode: 0o640, Body: "deep"},
		"run.sh":    {Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"}, // setuid dropped
		"etc-link":  {Type: tar.TypeSymlink, Mode: 0o777, Link: "/etc"},
		"dir-link":  {Type: tar.TypeSymlink, Mode: 0o777, Link: "a"},
		"rel-link":  {Type: tar.TypeSymlink, Mode: 0o777, Link: "a/b/c.txt"},
	}
	for name, w := range checks {
		h, _ := find(hs, name)
		if h.Type != w.Type || h.Mode != w.Mode || h.Link != w.Link || h.Body != w.Body {
			t.Errorf("%s: got type %c mode %o link %q body %q; want type %c mode %o link %q body %q",
				name, h.Type, h.Mode, h.Link, h.Body, w.Type, w.Mode, w.Link, w.Body)
		}
	}
	if h, _ := find(hs, "a/b/c.txt"); !h.ModTime.Equal(testTime) {
		t.Errorf("mtime %v, want %v", h.ModTime, testTime)
	}

	// Deterministic: a second run gives the same bytes.
	var again bytes.Buffer
	if _, err := Seed(context.Background(), src, &again, Limits{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Error("two seeds of the same directory differ")
	}
}

func TestSeedDirectoryRoundTrip(t *testing.T) {
	src := seedTree(t)
	var out bytes.Buffer
	if _, err := Seed(context.Background(), src, &out, Limits{}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if _, err := Extract(context.Background(), &out, dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, src)
	delete(want, "a/pipe")
	want["run.sh"] = strings.Replace(want["run.sh"], "4755", "755", 1)
	want["tmp"] = "dir 777" // Extract keeps permission bits only
	sameTree(t, want, snapshot(t, dest))
}

func tarSeedEntries() []tent {
	return []tent{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./src/", typ: tar.TypeDir, mode: 0o755},
		{name: "./src/main.go", body: "package main\n", mode: 0o644},
		{name: "bin/tool", body: "#!/bin/sh\necho hi\n", mode: 0o4755},
		{name: "src//./util.go", body: "package main // util\n"},
		{name: "src/link", typ: tar.TypeSymlink, link: "main.go"},
		{name: "src/hard", typ: tar.TypeLink, link: "./src/main.go"},
		{name: "outside-link", typ: tar.TypeSymlink, link: "/etc/passwd"},
	}
}

func TestSeedTarAndTgzRoundTrip(t *testing.T) {
	raw := buildTar(t, tarSeedEntries())
	want := map[string]string{
		"src":          "dir 755",
		"bin":          "dir 755",
		"src/main.go":  `file 644 2024-05-06T07:08:09Z "package main\n"`,
		"src/hard":     `file 644 2024-05-06T07:08:09Z "package main\n"`,
		"src/util.go":  `file 644 2024-05-06T07:08:09Z "package main // util\n"`,
		"bin/tool":     `file 755 2024-05-06T07:08:09Z "#!/bin/sh\necho hi\n"`,
		"src/link":     "link -> main.go",
		"outside-link": "link -> /etc/passwd",
	}
	for _, tc := range []struct {
		file string
		data []byte
	}{
		{"seed.tar", raw},
		{"seed.tgz", gz(t, raw)},
		{"seed.tar.gz", gz(t, raw)},
		{"misnamed.tar", gz(t, raw)}, // gzip found by magic, not extension
		{"misnamed.tgz", raw},
		{"noext", gz(t, raw)},
	} {
		t.Run(tc.file, func(t *testing.T) {
			src := writeFile(t, filepath.Join(t.TempDir(), tc.file), tc.data)
			var out bytes.Buffer
			st, err := Seed(context.Background(), src, &out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Entries != 7 { // "./" is the root and is not an entry
				t.Errorf("entries %d, want 7", st.Entries)
			}
			hs := readTar(t, out.Bytes())
			for _, h := range hs {
				if strings.HasPrefix(h.Name, "./") || strings.HasPrefix(h.Name, "/") || strings.HasSuffix(h.Name, "/") || h.Uid != 0 || h.Uname != "" {
					t.Errorf("entry not normalized: %+v", h)
				}
			}
			if h, _ := find(hs, "src/hard"); h.Type != tar.TypeLink || h.Link != "src/main.go" {
				t.Errorf("hard link: %+v", h)
			}
			dest := t.TempDir()
			if _, err := Extract(context.Background(), &out, dest, Limits{}); err != nil {
				t.Fatal(err)
			}
			got := snapshot(t, dest)
			// Directories without a header get 0755 from extraction.
			sameTree(t, want, got)
		})
	}
}

func TestSeedMaliciousTar(t *testing.T) {
	for _, tc := range []struct {
		name string
		ents []tent
		code string
		msg  string
	}{
		{"dotdot", []tent{{name: "../x", body: "x"}}, CodePathOutsideWorkspace, "../x"},
		{"absolute", []tent{{name: "/abs", body: "x"}}, CodePathOutsideWorkspace, "/abs"},
		{"nested dotdot", []tent{{name: "a/../../x", body: "x"}}, CodePathOutsideWorkspace, "a/../../x"},
		{"chardev", []tent{{name: "dev/null", typ: tar.TypeChar}}, CodeBadArchive, "dev/null"},
		{"blockdev", []tent{{name: "sda", typ: tar.TypeBlock}}, CodeBadArchive, "sda"},
		{"fifo", []tent{{name: "pipe", typ: tar.TypeFifo}}, CodeBadArchive, "pipe"},
		{"hardlink outside", []tent{{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}}, CodePathOutsideWorkspace, "/etc/passwd"},
		{"hardlink dotdot", []tent{{name: "pw", typ: tar.TypeLink, link: "../../etc/passwd"}}, CodePathOutsideWorkspace, "passwd"},
		{"hardlink unseen", []tent{{name: "h", typ: tar.TypeLink, link: "later"}, {name: "later", body: "x"}}, CodeBadArchive, "later"},
		{"hardlink to dir", []tent{{name: "d", typ: tar.TypeDir}, {name: "h", typ: tar.TypeLink, link: "d"}}, CodeBadArchive, "h"},
		{"symlink no target", []tent{{name: "l", typ: tar.TypeSymlink}}, CodeBadArchive, "l"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := writeFile(t, filepath.Join(t.TempDir(), "bad.tar"), buildTar(t, tc.ents))
			_, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{})
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not name %q", err, tc.msg)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("class: %v", err)
			}
		})
	}
}

func TestSeedCorruptArchives(t *testing.T) {
	raw := buildTar(t, []tent{{name: "a", body: strings.Repeat("x", 3000)}, {name: "b", body: "y"}})
	z := gz(t, raw)
	corruptGz := append([]byte{}, z...)
	for i := 12; i < len(corruptGz)-8; i++ {
		corruptGz[i] ^= 0x5a
	}
	badCRC := append([]byte{}, z...)
	badCRC[len(badCRC)-6] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"truncated tar", raw[:1500]},
		{"truncated tgz", z[:len(z)/2]},
		{"corrupt gzip data", corruptGz},
		{"bad gzip checksum", badCRC},
		{"gzip magic only", []byte{0x1f, 0x8b, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := writeFile(t, filepath.Join(t.TempDir(), "x.tar"), tc.data)
			_, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{})
			wantCode(t, err, CodeBadArchive)
		})
	}
}

func TestSeedMissingAndNotArchive(t *testing.T) {
	_, err := Seed(context.Background(), filepath.Join(t.TempDir(), "nope"), &bytes.Buffer{}, Limits{})
	wantCode(t, err, CodeNotFound)
	if !errdefs.IsNotFound(err) {
		t.Errorf("not a not-found error: %v", err)
	}

	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	f, _ := zw.Create("a.txt")
	f.Write([]byte(strings.Repeat("zip content ", 100)))
	zw.Close()
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"notes.txt":  []byte(strings.Repeat("just some text\n", 100)),
		"short.tar":  []byte("hi"),
		"empty.tar":  nil,
		"seed.zip":   zbuf.Bytes(),
		"text.gz":    gz(t, []byte(strings.Repeat("plain text, not tar\n", 100))),
		"binary.tar": bytes.Repeat([]byte{0xff, 0x01}, 1024),
	} {
		t.Run(name, func(t *testing.T) {
			src := writeFile(t, filepath.Join(dir, name), data)
			_, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{})
			wantCode(t, err, errdefs.CodeInvalidArgument)
			if !strings.Contains(err.Error(), "directory") || !strings.Contains(err.Error(), ".tar.gz") {
				t.Errorf("message should list the accepted forms: %v", err)
			}
		})
	}
}

func TestSeedLimits(t *testing.T) {
	t.Run("declared size", func(t *testing.T) {
		// A header claiming 1 GiB, followed by nothing.
		src := writeFile(t, filepath.Join(t.TempDir(), "big.tar"),
			buildTar(t, []tent{{name: "small", body: "x"}, {name: "huge", size: 1 << 30}}))
		var out bytes.Buffer
		_, err := Seed(context.Background(), src, &out, Limits{MaxBytes: 10 << 20})
		wantCode(t, err, CodeTooLarge)
		if h := readTarPartial(out.Bytes()); slices.Contains(h, "huge") {
			t.Error("the oversized entry was written")
		}
	})
	t.Run("sum of sizes", func(t *testing.T) {
		var ents []tent
		for i := range 5 {
			ents = append(ents, tent{name: string(rune('a' + i)), body: strings.Repeat("x", 300)})
		}
		src := writeFile(t, filepath.Join(t.TempDir(), "sum.tar"), buildTar(t, ents))
		_, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{MaxBytes: 1000})
		wantCode(t, err, CodeTooLarge)
		_, err = Seed(context.Background(), src, &bytes.Buffer{}, Limits{MaxBytes: 1500})
		if err != nil {
			t.Fatalf("exactly at the limit: %v", err)
		}
	})
	t.Run("entries", func(t *testing.T) {
		var ents []tent
		for i := range 11 {
			ents = append(ents, tent{name: "f" + string(rune('a'+i))})
		}
		src := writeFile(t, filepath.Join(t.TempDir(), "many.tar"), buildTar(t, ents))
		_, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{MaxEntries: 10})
		wantCode(t, err, CodeTooLarge)
		if _, err := Seed(context.Background(), src, &bytes.Buffer{}, Limits{MaxEntries: 11}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for i := range 11 {
			writeFile(t, filepath.Join(dir, "f"+string(rune('a'+i))), nil)
		}
		_, err = Seed(context.Background(), dir, &bytes.Buffer{}, Limits{MaxEntries: 10})
		wantCode(t, err, CodeTooLarge)
	})
	t.Run("directory bytes", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a"), make([]byte, 2000))
		_, err := Seed(context.Background(), dir, &bytes.Buffer{}, Limits{MaxBytes: 1000})
		wantCode(t, err, CodeTooLarge)
	})
}

// countingReader counts the compressed bytes consumed.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// gzipBomb is a tgz holding one 100 MiB file of zeros, about 100 KiB long.
// It is built from concatenated gzip members (which gzip readers accept as
// one stream) so that the test does not have to compress 100 MiB.
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	const mib = 1 << 20
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: 100 * mib, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	zeros := gz(t, make([]byte, mib))
	var bomb bytes.Buffer
	bomb.Write(gz(t, head.Bytes()))
	for range 100 {
		bomb.Write(zeros)
	}
	bomb.Write(gz(t, make([]byte, 1024))) // end of archive
	return bomb.Bytes()
}

func TestSeedGzipBomb(t *testing.T) {
	bomb := gzipBomb(t)
	t.Logf("bomb: %d bytes compressed", len(bomb))

	start := time.Now()
	cr := &countingReader{r: bytes.NewReader(bomb)}
	var out bytes.Buffer
	var st Stats
	o := newTarOut(&out, newBudget(Limits{MaxBytes: 10 << 20}, "the seed"), &st)
	err := seedStream(context.Background(), cr, "bomb.tgz", o)
	wantCode(t, err, CodeTooLarge)
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to stop the bomb", time.Since(start))
	}
	if cr.n > len(bomb)/2 || out.Len() > 1<<20 {
		t.Errorf("read %d of %d compressed bytes and wrote %d: the bomb was not stopped early", cr.n, len(bomb), out.Len())
	}

	// Same through the public API, from a file named .tar.
	src := writeFile(t, filepath.Join(t.TempDir(), "bomb.tar"), bomb)
	_, err = Seed(context.Background(), src, &out, Limits{MaxBytes: 10 << 20})
	wantCode(t, err, CodeTooLarge)
}

func TestStreamCap(t *testing.T) {
	// Entries whose headers are huge (PAX records) but whose content is not:
	// the decompressed stream is still bounded.
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for i := range 20 {
		h := &tar.Header{Name: "f" + string(rune('a'+i)), Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"comment": strings.Repeat("c", 100<<10)}}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	src := writeFile(t, filepath.Join(t.TempDir(), "pax.tgz"), gz(t, raw.Bytes()))
	lim := Limits{MaxBytes: 1 << 10, MaxEntries: 100} // cap: 1 KiB + 102*8 KiB
	_, err := Seed(context.Background(), src, &bytes.Buffer{}, lim)
	wantCode(t, err, CodeTooLarge)
	if !strings.Contains(err.Error(), "decompressed") {
		t.Errorf("want the stream cap, got %v", err)
	}
}

func TestMeterCountsActualBytes(t *testing.T) {
	// Declared sizes can lie only in streams we do not parse with
	// archive/tar; the content meter stops on actual bytes regardless.
	b := newBudget(Limits{MaxBytes: 100}, "the seed")
	m := b.content(context.Background(), bytes.NewReader(make([]byte, 1000)))
	_, err := bytes.NewBuffer(nil).ReadFrom(m)
	wantCode(t, err, CodeTooLarge)
	if b.actual > 100+32<<10 {
		t.Errorf("read %d bytes past the limit", b.actual)
	}
}

func TestSeedCanceled(t *testing.T) {
	src := seedTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Seed(ctx, src, &bytes.Buffer{}, Limits{})
	wantCode(t, err, errdefs.CodeCanceled)
	if !errdefs.IsCanceled(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("class: %v", err)
	}

	// Canceled while copying a big entry.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	big := writeFile(t, filepath.Join(t.TempDir(), "big.tar"),
		buildTar(t, []tent{{name: "big", body: strings.Repeat("x", 4<<20)}}))
	w := &cancelWriter{after: 1 << 20, cancel: cancel}
	_, err = Seed(ctx, big, w, Limits{})
	wantCode(t, err, errdefs.CodeCanceled)
	if w.n > 2<<20 {
		t.Errorf("wrote %d bytes after cancellation", w.n)
	}

	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = Seed(ctx, src, &bytes.Buffer{}, Limits{})
	wantCode(t, err, errdefs.CodeTimeout)
}

// cancelWriter cancels its context once it has taken after bytes.
type cancelWriter struct {
	n, after int
	cancel   func()
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.n >= c.after {
		c.cancel()
	}
	return len(p), nil
}

// readTarPartial lists the names in a possibly truncated tar.
func readTarPartial(data []byte) []string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		out = append(out, h.Name)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a": "a", "./a": "a", "a/": "a", "./a//b/./c/": "a/b/c", ".": "", "./": "", "a/./b": "a/b",
	} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/", "/a", "..", "../a", "a/..", "a/../b", "a/../../b", "a\x00b"} {
		if _, err := cleanName(in); err == nil {
			t.Errorf("cleanName(%q) accepted", in)
		}
	}
}

// A file with several names in the tree is packed once, its other names as
// hard links, and comes back as one file with several names.
func TestSeedDirectoryKeepsHardLinks(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("same"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a"), filepath.Join(src, "b")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := Seed(context.Background(), src, &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	hs := readTar(t, out.Bytes())
	if h, _ := find(hs, "b"); h.Type != tar.TypeLink || h.Link != "a" || st.Bytes != 4 {
		t.Fatalf("b: %+v, stats %+v", h, st)
	}
	dest := t.TempDir()
	if _, err := Extract(context.Background(), &out, dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(dest, "a"))
	b, _ := os.Stat(filepath.Join(dest, "b"))
	if !os.SameFile(a, b) {
		t.Error("extracted as copies")
	}
}
