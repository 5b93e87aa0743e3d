package wsdiff

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

var calc = memFS{"src/calc.sh": {numbered(20), 0o755}, "README": {"hello\n", 0o644}}

func plan(t *testing.T, fs memFS, patch string) memFS {
	t.Helper()
	res, err := Plan(patch, fs.source)
	if err != nil {
		t.Fatalf("%v\npatch:\n%s", err, patch)
	}
	return fs.write(res)
}

func TestPlanTwoHunks(t *testing.T) {
	patch := `diff --git a/src/calc.sh b/src/calc.sh
index 1234567..89abcde 100755
--- a/src/calc.sh
+++ b/src/calc.sh
@@ -1,4 +1,4 @@
-line x
+line ONE
 line xx
 line xxx
 line xxxx
@@ -10,3 +10,4 @@ some function
 line xxx
 line xxxx
+inserted
 line xxxxx
`
	got := plan(t, calc, patch)
	lines := splitLines([]byte(numbered(20)))
	lines[0] = "line ONE\n"
	want := strings.Join(slices.Insert(lines, 11, "inserted\n"), "")
	if g := got["src/calc.sh"]; g.content != want || g.mode != 0o755 {
		t.Fatalf("got %q (%o)\nwant %q", g.content, g.mode, want)
	}
	res, _ := Plan(patch, calc.source)
	if !slices.Equal(res.Changed, []string{"src/calc.sh"}) || len(res.Files) != 1 {
		t.Fatalf("%+v", res)
	}
}

func TestPlanPlainAndOffset(t *testing.T) {
	// Plain ---/+++ with a/ b/ prefixes, a hunk two lines off, a timestamp.
	patch := "--- a/src/calc.sh\t2024-01-01 10:00:00.000000000 +0000\n+++ b/src/calc.sh\t2024-01-01 10:00:01.000000000 +0000\n@@ -3,3 +3,3 @@\n line xxxx\n-line xxxxx\n+line five\n line xxxxxx\n"
	got := plan(t, calc, patch)
	if !strings.Contains(got["src/calc.sh"].content, "line xxxx\nline five\nline xxxxxx\n") {
		t.Fatalf("%q", got["src/calc.sh"].content)
	}
	// Without prefixes: both names the same.
	got = plan(t, calc, "--- src/calc.sh\n+++ src/calc.sh\n@@ -1 +1 @@\n-line x\n+first\n")
	if !strings.HasPrefix(got["src/calc.sh"].content, "first\nline xx\n") {
		t.Fatalf("%q", got["src/calc.sh"].content)
	}
	// /workspace/ prefixed paths.
	got = plan(t, calc, "--- /workspace/README\n+++ /workspace/README\n@@ -1 +1 @@\n-hello\n+bye\n")
	if got["README"].content != "bye\n" {
		t.Fatalf("%v", got)
	}
	// diff -U0 insertion goes after the named line.
	got = plan(t, memFS{"f": {"1\n2\n3\n", 0o644}}, "--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+new\n")
	if got["f"].content != "1\n2\nnew\n3\n" {
		t.Fatalf("%q", got["f"].content)
	}
}

func TestPlanNewDeleteRenameMode(t *testing.T) {
	patch := `diff --git a/docs/new.md b/docs/new.md
new file mode 100755
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# New
+text
diff --git a/README b/README
deleted file mode 100644
--- a/README
+++ /dev/null
@@ -1 +0,0 @@
-hello
diff --git a/src/calc.sh b/bin/calc.sh
similarity index 100%
rename from src/calc.sh
rename to bin/calc.sh
old mode 100755
new mode 100644
`
	got := plan(t, calc, patch)
	want := memFS{"docs/new.md": {"# New\ntext\n", 0o755}, "bin/calc.sh": {numbered(20), 0o644}}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
	res, _ := Plan(patch, calc.source)
	if !slices.Equal(res.Changed, []string{"README", "bin/calc.sh", "docs/new.md", "src/calc.sh"}) {
		t.Fatalf("changed %q", res.Changed)
	}
	// Plain new file and deletion through /dev/null.
	got = plan(t, calc, "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+n\n--- a/README\n+++ /dev/null\n@@ -1 +0,0 @@\n-hello\n")
	if got["n.txt"] != (memFile{"n\n", 0o644}) || got["README"] != (memFile{}) {
		t.Fatalf("got %v", got)
	}
	// Creating an existing file, changing a missing one.
	_, err := Plan("--- /dev/null\n+++ b/README\n@@ -0,0 +1 @@\n+x\n", calc.source)
	wantCode(t, err, CodePatchFailed, errdefs.ErrFailedPrecondition)
	_, err = Plan("--- a/missing\n+++ b/missing\n@@ -1 +1 @@\n-a\n+b\n", calc.source)
	wantCode(t, err, CodePatchFailed, errdefs.ErrFailedPrecondition)
}

func TestPlanAllOrNothing(t *testing.T) {
	patch := `--- a/README
+++ b/README
@@ -1 +1 @@
-hello
+hi
--- a/src/calc.sh
+++ b/src/calc.sh
@@ -1,2 +1,2 @@
 line x
-line xx
+line two
@@ -10,2 +10,2 @@
 not in the file
-at all
+really
`
	res, err := Plan(patch, calc.source)
	wantCode(t, err, CodePatchFailed, errdefs.ErrFailedPrecondition)
	if res != nil {
		t.Fatalf("partial result %+v", res)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "src/calc.sh: hunk 2 (@@ -10,2 +10,2 @@) does not apply: line 10 is ") {
		t.Fatalf("message %q", msg)
	}
}

func TestPlanRefusesPaths(t *testing.T) {
	for _, patch := range []string{
		"--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
		"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
		"--- /dev/null\n+++ /tmp/evil\n@@ -0,0 +1 @@\n+x\n",
		"--- /workspace/../etc/x\n+++ /workspace/../etc/x\n@@ -1 +1 @@\n-a\n+b\n",
		"diff --git a/x/../../y b/x/../../y\n--- a/x/../../y\n+++ b/x/../../y\n@@ -1 +1 @@\n-a\n+b\n",
		"diff --git a/ok b/ok\nrename from ok\nrename to /etc/cron.d/x\n",
	} {
		_, err := Plan(patch, calc.source)
		wantCode(t, err, CodePathOutsideWorkspace, errdefs.ErrInvalidArgument)
		_, err = Paths(patch)
		wantCode(t, err, CodePathOutsideWorkspace, errdefs.ErrInvalidArgument)
	}
}

func TestPlanInvalid(t *testing.T) {
	for name, patch := range map[string]string{
		"empty":      "",
		"blank":      "\n\n",
		"prose":      "please change README\n",
		"miscount":   "--- a/README\n+++ b/README\n@@ -1,3 +1,3 @@\n-hello\n+bye\n",
		"no-op":      "diff --git a/README b/README\n",
		"binary":     "diff --git a/img.bin b/img.bin\nindex 1234567..89abcde 100644\nGIT binary patch\nliteral 0\nHcmV?d00001\n\nliteral 0\nHcmV?d00001\n\n",
		"bin-nodata": "diff --git a/img.bin b/img.bin\nindex 1234567..89abcde 100644\nBinary files a/img.bin and b/img.bin differ\n",
		"symlink":    "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n",
	} {
		res, err := Plan(patch, calc.source)
		if res != nil {
			t.Fatalf("%s: result %+v", name, res)
		}
		wantCode(t, err, errdefs.CodeInvalidArgument, errdefs.ErrInvalidArgument)
		switch name {
		case "empty", "blank", "prose", "no-op":
			if err.Error() != "patch: no file changes found in the patch" {
				t.Fatalf("%s: %v", name, err)
			}
		case "binary", "bin-nodata":
			if !strings.Contains(err.Error(), "binary patch") {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

func TestPlanNonRegularAndSourceErrors(t *testing.T) {
	src := func(p string) ([]byte, os.FileMode, bool, error) {
		switch p {
		case "dir":
			return nil, os.ModeDir | 0o755, true, nil
		case "gone":
			return nil, 0, false, errdefs.New(errdefs.ErrNotFound, "not_found", "no such file")
		}
		return nil, 0, false, errdefs.New(errdefs.ErrUnavailable, "unavailable", "guest gone")
	}
	_, err := Plan("--- a/dir\n+++ b/dir\n@@ -1 +1 @@\n-a\n+b\n", src)
	wantCode(t, err, CodePatchFailed, errdefs.ErrFailedPrecondition)
	res, err := Plan("--- /dev/null\n+++ b/gone\n@@ -0,0 +1 @@\n+x\n", src)
	if err != nil || res.Files[0].Path != "gone" {
		t.Fatalf("not_found source: %+v %v", res, err)
	}
	_, err = Plan("--- a/other\n+++ b/other\n@@ -1 +1 @@\n-a\n+b\n", src)
	wantCode(t, err, "unavailable", errdefs.ErrUnavailable)
}

func TestPaths(t *testing.T) {
	patch := "--- a/src/x\n+++ b/src/x\n@@ -1 +1 @@\n-a\n+b\n" +
		"--- /dev/null\n+++ b/created\n@@ -0,0 +1 @@\n+x\n" +
		"--- /workspace/src/x\n+++ /workspace/src/x\n@@ -1 +1 @@\n-b\n+c\n" +
		"diff --git a/old b/new\nrename from old\nrename to new\n"
	got, err := Paths(patch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"created", "new", "old", "src/x"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Two sections on one file apply in order.
	fs := plan(t, memFS{"src/x": {"a\n", 0o644}, "old": {"o\n", 0o600}}, patch)
	if fs["src/x"].content != "c\n" || fs["new"] != (memFile{"o\n", 0o600}) || fs["created"].content != "x\n" {
		t.Fatalf("%v", fs)
	}
}
