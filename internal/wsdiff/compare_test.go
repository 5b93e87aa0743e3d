package wsdiff

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	return b.String()
}

func compare(t *testing.T, base, cur []tent, lim Limits) *Result {
	t.Helper()
	res, err := Compare(tarOf(t, base...), tarOf(t, cur...), lim)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func byPath(res *Result) map[string]Change {
	m := map[string]Change{}
	for _, c := range res.Changes {
		m[c.Path] = c
	}
	return m
}

func TestCompareTextChanges(t *testing.T) {
	base := []tent{dir("src"), file("src/calc.sh", "a\nb\nc\n"), file("old.txt", "gone\n"), file("same.txt", "x\n")}
	cur := []tent{dir("src"), file("src/calc.sh", "a\nB\nc\n"), file("new.txt", "hello\nworld\n"), file("same.txt", "x\n")}
	res := compare(t, base, cur, Limits{})
	if res.Added != 1 || res.Modified != 1 || res.Deleted != 1 || len(res.Changes) != 3 {
		t.Fatalf("counts %d/%d/%d, changes %+v", res.Added, res.Modified, res.Deleted, res.Changes)
	}
	for i, want := range []string{"new.txt", "old.txt", "src/calc.sh"} {
		if res.Changes[i].Path != want {
			t.Fatalf("change %d is %q, want %q (sorted)", i, res.Changes[i].Path, want)
		}
	}
	m := byPath(res)
	calc := m["src/calc.sh"]
	wantDiff := "diff --git a/src/calc.sh b/src/calc.sh\n--- a/src/calc.sh\n+++ b/src/calc.sh\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
	if calc.Status != "modified" || calc.Kind != "file" || calc.Binary || calc.Diff != wantDiff {
		t.Fatalf("calc: %+v\ndiff:\n%s", calc, calc.Diff)
	}
	if n := m["new.txt"]; n.Status != "added" || !strings.Contains(n.Diff, "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n") {
		t.Fatalf("new: %+v", n)
	}
	if o := m["old.txt"]; o.Status != "deleted" || !strings.Contains(o.Diff, "deleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n") {
		t.Fatalf("old: %+v", o)
	}
	if !strings.Contains(res.Patch, calc.Diff) || !strings.Contains(res.Patch, m["new.txt"].Diff) {
		t.Fatalf("patch lacks a diff:\n%s", res.Patch)
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"added":1`, `"modified":1`, `"deleted":1`, `"changes":[`, `"patch":"diff --git`} {
		if !strings.Contains(string(js), k) {
			t.Fatalf("json lacks %s: %s", k, js)
		}
	}
}

func TestCompareModeOnly(t *testing.T) {
	res := compare(t, []tent{file("run.sh", "echo hi\n")}, []tent{exe("run.sh", "echo hi\n")}, Limits{})
	if len(res.Changes) != 1 {
		t.Fatalf("changes %+v", res.Changes)
	}
	c := res.Changes[0]
	if c.ModeChange != "100644 -> 100755" || c.Status != "modified" || c.Binary ||
		c.Diff != "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n" {
		t.Fatalf("%+v", c)
	}
	// Mode and content together.
	res = compare(t, []tent{file("run.sh", "echo hi\n")}, []tent{exe("run.sh", "echo bye\n")}, Limits{})
	c = res.Changes[0]
	if c.ModeChange != "100644 -> 100755" || !strings.Contains(c.Diff, "old mode 100644\nnew mode 100755\n--- a/run.sh") {
		t.Fatalf("%+v", c)
	}
}

func TestCompareBinary(t *testing.T) {
	res := compare(t, []tent{file("img.bin", "ab\x00cd")}, []tent{file("img.bin", "ab\x00cde")}, Limits{})
	c := res.Changes[0]
	if !c.Binary || c.Diff != "" || c.Summary != "binary file changed (5 -> 6 bytes)" || res.Patch != "" {
		t.Fatalf("%+v", c)
	}
	// Text to invalid UTF-8 is binary too; added binary has no diff.
	res = compare(t, []tent{file("t.txt", "text\n")}, []tent{file("t.txt", "\xff\xfe\n"), file("b.bin", "\x00")}, Limits{})
	m := byPath(res)
	if !m["t.txt"].Binary || m["t.txt"].Diff != "" || !m["b.bin"].Binary || m["b.bin"].Diff != "" ||
		m["b.bin"].Summary != "binary file added (1 bytes)" {
		t.Fatalf("%+v", res.Changes)
	}
}

func TestCompareLargeFile(t *testing.T) {
	big1, big2 := strings.Repeat("a\n", 100), strings.Repeat("a\n", 99)+"b\n"
	res := compare(t, []tent{file("big.txt", big1), file("same.txt", big1)},
		[]tent{file("big.txt", big2), file("same.txt", big1)}, Limits{MaxTextBytes: 64})
	if len(res.Changes) != 1 {
		t.Fatalf("changes %+v", res.Changes)
	}
	c := res.Changes[0]
	if !c.Binary || c.Diff != "" || !strings.Contains(c.Summary, "large file changed (200 -> 200 bytes") {
		t.Fatalf("%+v", c)
	}
}

func TestCompareSymlinksAndDirs(t *testing.T) {
	base := []tent{symlink("cur", "v1"), symlink("gone", "x"), dir("emptyold"), dir("full"), file("full/f", "f\n"),
		file("kind", "was a file\n")}
	cur := []tent{symlink("cur", "v2"), dir("emptynew"), dir("full"), file("full/f", "f\n"), dir("full/sub"),
		symlink("kind", "elsewhere")}
	res := compare(t, base, cur, Limits{})
	m := byPath(res)
	if len(m) != 6 {
		t.Fatalf("changes %+v", res.Changes)
	}
	if c := m["cur"]; c.Kind != "symlink" || c.Status != "modified" || c.Summary != "symlink target changed: v1 -> v2" || c.Diff != "" {
		t.Fatalf("%+v", c)
	}
	if c := m["gone"]; c.Kind != "symlink" || c.Status != "deleted" {
		t.Fatalf("%+v", c)
	}
	if c := m["emptyold"]; c.Kind != "dir" || c.Status != "deleted" {
		t.Fatalf("%+v", c)
	}
	if c := m["emptynew"]; c.Kind != "dir" || c.Status != "added" {
		t.Fatalf("%+v", c)
	}
	if c := m["full/sub"]; c.Kind != "dir" || c.Status != "added" {
		t.Fatalf("%+v", c)
	}
	if c := m["kind"]; c.Kind != "symlink" || c.Status != "modified" || c.Summary != "file replaced by symlink to elsewhere" {
		t.Fatalf("%+v", c)
	}
	if res.Patch != "" {
		t.Fatalf("symlinks and dirs leaked into the patch:\n%s", res.Patch)
	}
}

func TestCompareIdentical(t *testing.T) {
	tree := []tent{dir("."), dir("a"), file("a/x", "1\n"), exe("run", "#!/bin/sh\n"), symlink("l", "a/x"), dir("e")}
	res := compare(t, tree, tree, Limits{})
	if len(res.Changes) != 0 || res.Patch != "" || res.Added+res.Modified+res.Deleted != 0 {
		t.Fatalf("%+v", res)
	}
	if js, _ := json.Marshal(res); !strings.Contains(string(js), `"changes":[]`) {
		t.Fatalf("changes should encode as []: %s", js)
	}
}

func TestCompareHostileCurrent(t *testing.T) {
	base := []tent{file("a", "1\n")}
	for _, name := range []string{"../x", "a/../../x", "/abs", "/workspace/a"} {
		_, err := Compare(tarOf(t, base...), tarOf(t, file(name, "evil\n")), Limits{})
		wantCode(t, err, CodePathOutsideWorkspace, errdefs.ErrInvalidArgument)
	}
	_, err := Compare(tarOf(t, base...), tarOf(t, file("big", strings.Repeat("x", 2000))), Limits{MaxBytes: 1000})
	wantCode(t, err, CodeTooLarge, errdefs.ErrInvalidArgument)
	// The sum counts, not one file.
	_, err = Compare(tarOf(t, base...), tarOf(t, file("b1", strings.Repeat("x", 600)), file("b2", strings.Repeat("x", 600))), Limits{MaxBytes: 1000})
	wantCode(t, err, CodeTooLarge, errdefs.ErrInvalidArgument)
	// Garbage is a bad archive.
	_, err = Compare(tarOf(t, base...), strings.NewReader(strings.Repeat("garbage!", 100)), Limits{})
	wantCode(t, err, CodeBadArchive, errdefs.ErrInvalidArgument)
	// Special entry types are ignored, not an error (hard links: TestCompareHardLinks).
	cur := tarOf(t, file("a", "1\n"), tent{name: "fifo", typ: tar.TypeFifo, mode: 0o644},
		tent{name: "dev", typ: tar.TypeChar})
	res, err := Compare(tarOf(t, base...), cur, Limits{})
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("res %+v err %v", res, err)
	}
}

// roundTripTrees has every kind of text change Patch can carry.
func roundTripTrees() (base, cur []tent) {
	long := numbered(60)
	longChanged := strings.Replace(strings.Replace(long, "line x\n", "LINE ONE\n", 1), "line xxxxxx\n", "line six\nand more\n", 4)
	base = []tent{
		dir("src"),
		file("src/long.txt", long),
		file("src/nonl.txt", "no newline"),
		file("src/addnl.txt", "a\nb"),
		file("deleted.txt", "bye\n"),
		file("emptied.txt", "x\ny\n"),
		file("was-empty.txt", ""),
		file("mode.sh", "echo\n"),
		file("with space.txt", "s1\n"),
		file("caf\u00e9.txt", "accent\n"),
		file("weird\nname\t\"q\".txt", "w\n"),
		file("img.bin", "\x00\x01"),
		file("deleted-empty", ""),
	}
	cur = []tent{
		dir("src"),
		file("src/long.txt", longChanged),
		file("src/nonl.txt", "no newline, changed"),
		file("src/addnl.txt", "a\nb\n"),
		file("src/new.txt", "brand\nnew\n"),
		file("new-nonl.txt", "tail"),
		file("new-empty.txt", ""),
		file("emptied.txt", ""),
		file("was-empty.txt", "now full\n"),
		exe("mode.sh", "echo\n"),
		file("with space.txt", "s2\n"),
		file("caf\u00e9.txt", "accent\u00e9\n"),
		file("weird\nname\t\"q\".txt", "w2\n"),
		file("img.bin", "\x00\x02"),
	}
	return base, cur
}

// TestRoundTrip applies Result.Patch with Plan to the baseline and gets the
// current text files back.
func TestRoundTrip(t *testing.T) {
	base, cur := roundTripTrees()
	res := compare(t, base, cur, Limits{})
	plan, err := Plan(res.Patch, filesOf(base...).source)
	if err != nil {
		t.Fatalf("%v\npatch:\n%s", err, res.Patch)
	}
	got := filesOf(base...).write(plan)
	want := filesOf(cur...)
	want["img.bin"] = got["img.bin"] // binary changes are not in the patch
	if !maps.Equal(got, want) {
		t.Fatalf("round trip:\n got %v\nwant %v\npatch:\n%s", got, want, res.Patch)
	}
	if len(plan.Changed) != len(res.Changes)-1 {
		t.Fatalf("changed %q, changes %d", plan.Changed, len(res.Changes))
	}
}

// TestRoundTripGitApply checks that git apply and patch -p1 accept Patch.
func TestRoundTripGitApply(t *testing.T) {
	base, cur := roundTripTrees()
	res := compare(t, base, cur, Limits{})
	for _, tool := range [][]string{{"git", "apply", "--unsafe-paths"}, {"patch", "-p1", "-s", "--batch"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Logf("%s not installed, skipped", tool[0])
			continue
		}
		dir := t.TempDir()
		for path, f := range filesOf(base...) {
			p := filepath.Join(dir, filepath.FromSlash(path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(res.Patch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s\npatch:\n%s", tool, err, out, res.Patch)
		}
		for path, f := range filesOf(cur...) {
			if path == "img.bin" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
			if err != nil || !bytes.Equal(b, []byte(f.content)) {
				t.Fatalf("%s: %s: got %q (%v), want %q", tool[0], path, b, err, f.content)
			}
		}
	}
}

// TestRoundTripRandom diffs and re-applies random edits of random files.
func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a\n", "b\n", "}\n", "\n", "x := 1\n", "return\n"}
	randLines := func(n int) []string {
		var ls []string
		for range n {
			if rng.IntN(3) == 0 {
				ls = append(ls, fmt.Sprintf("unique %d\n", rng.IntN(1000)))
			} else {
				ls = append(ls, words[rng.IntN(len(words))])
			}
		}
		return ls
	}
	for iter := range 300 {
		a := randLines(rng.IntN(60))
		b := slices.Clone(a)
		for range rng.IntN(8) {
			at := rng.IntN(len(b) + 1)
			switch rng.IntN(3) {
			case 0:
				b = slices.Insert(b, at, randLines(1+rng.IntN(4))...)
			case 1:
				b = slices.Delete(b, at, min(len(b), at+1+rng.IntN(4)))
			default:
				if at < len(b) {
					b[at] = randLines(1)[0]
				}
			}
		}
		as, bs := strings.Join(a, ""), strings.Join(b, "")
		if rng.IntN(4) == 0 {
			bs = strings.TrimSuffix(bs, "\n")
		}
		base, cur := []tent{file("f", as)}, []tent{file("f", bs)}
		res := compare(t, base, cur, Limits{})
		if as == bs {
			if len(res.Changes) != 0 {
				t.Fatalf("iter %d: change for equal files", iter)
			}
			continue
		}
		p, err := Plan(res.Patch, filesOf(base...).source)
		if err != nil {
			t.Fatalf("iter %d: %v\n%s", iter, err, res.Patch)
		}
		if got := filesOf(base...).write(p)["f"].content; got != bs {
			t.Fatalf("iter %d: got %q want %q\n%s", iter, got, bs, res.Patch)
		}
	}
}

func TestLargeScatteredDiffIsFast(t *testing.T) {
	var a, b strings.Builder
	for i := range 30000 {
		fmt.Fprintf(&a, "line %d of the file with some text\n", i)
		if i%10 == 0 {
			fmt.Fprintf(&b, "changed %d\n", i)
		} else {
			fmt.Fprintf(&b, "line %d of the file with some text\n", i)
		}
	}
	start := time.Now()
	diff, added, removed := fileDiff("x", &side{[]byte(a.String()), 0o644}, &side{[]byte(b.String()), 0o644})
	if added != 3000 || removed != 3000 || time.Since(start) > 5*time.Second {
		t.Fatalf("+%d -%d in %v", added, removed, time.Since(start))
	}
	p, err := Plan(diff, memFS{"x": {a.String(), 0o644}}.source)
	if err != nil || string(p.Files[0].Content) != b.String() {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("1 MiB, 3000 changed lines: diffed in %v", time.Since(start))
}

// A hard link is compared as the file it names: a baseline copy and a
// current hard link with the same content are no change, a new link is an
// added file, and a link to nothing earlier is refused.
func TestCompareHardLinks(t *testing.T) {
	hard := func(name, target string) tent { return tent{name: name, typ: tar.TypeLink, mode: 0o644, link: target} }
	base := []tent{file("a", "x\n"), file("b", "x\n")}
	cur := []tent{file("a", "x\n"), hard("b", "a"), hard("c", "a")}
	res := compare(t, base, cur, Limits{})
	if len(res.Changes) != 1 || res.Changes[0].Path != "c" || res.Changes[0].Status != "added" || res.Changes[0].Kind != "file" {
		t.Fatalf("%+v", res.Changes)
	}
	_, err := Compare(tarOf(t, base...), tarOf(t, hard("b", "nope")), Limits{})
	if errdefs.CodeOf(err) != CodeBadArchive {
		t.Fatalf("link to nothing: %v", err)
	}
}
