package vm

import "testing"

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
