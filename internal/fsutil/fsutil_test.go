package fsutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteJSONAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	for i := range 3 {
		write := WriteJSONAtomic
		if i == 1 {
			write = ReplaceJSON // the same, less the directory's fsync
		}
		if err := write(p, map[string]int{"n": i}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p)
	var v map[string]int
	if err != nil || json.Unmarshal(b, &v) != nil || v["n"] != 2 {
		t.Fatalf("%s: %v", b, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if err := WriteJSONAtomic(filepath.Join(dir, "missing", "x.json"), 1, 0o600); err == nil {
		t.Error("write into a missing dir succeeded")
	}
	if err := ReplaceJSON(filepath.Join(dir, "missing", "x.json"), 1, 0o600); err == nil {
		t.Error("replace into a missing dir succeeded")
	}
	if DiskUsage(dir) <= 0 {
		t.Error("disk usage of a dir with a file is 0")
	}
}
