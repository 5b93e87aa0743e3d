package ident

import (
	"os"
	"testing"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		NewID(): true, "0123456789ab": true, "abcdefabcdef": true,
		"": false, "0123456789a": false, "0123456789abc": false, "0123456789AB": false,
		"0123456789a/": false, "../123456789": false, "0123456789ag": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v", id, got)
		}
	}
}

// A start recorded during another boot never names a process of this one,
// even with the same pid and start tick (a host reboot counts both afresh);
// this boot's records, and untagged ones written before tags, still do.
func TestAliveAcrossBoots(t *testing.T) {
	pid := os.Getpid()
	if !Alive(pid, ProcStart(pid)) {
		t.Fatal("this process is not alive by its own start")
	}
	_, raw := procStat(pid)
	if !Alive(pid, raw) {
		t.Fatal("an untagged start (record from before boot tags) no longer matches")
	}
	other := ProcStartOfBoot(pid, "00000000-0000-0000-0000-000000000000")
	if other == ProcStart(pid) || Alive(pid, other) {
		t.Fatalf("a start recorded in another boot (%d) matches this process (%d)", other, ProcStart(pid))
	}
	if ProcStart(1<<22) != 0 {
		t.Fatal("a missing process has a start")
	}
}
