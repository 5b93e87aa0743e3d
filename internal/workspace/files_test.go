package workspace

import "testing"

func TestGuestPath(t *testing.T) {
	ok := map[string]string{
		"": "/workspace", ".": "/workspace", "src/a.go": "/workspace/src/a.go",
		"/workspace/x/": "/workspace/x", "./b": "/workspace/b",
	}
	for in, want := range ok {
		if got, err := GuestPath("path", in); err != nil || got != want {
			t.Errorf("GuestPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../x", "a/../b", "sub/../", "/workspace/../etc", "/etc/passwd", "/workspacex", "a\x00b"} {
		if got, err := GuestPath("path", in); err == nil {
			t.Errorf("GuestPath(%q) = %q, want an error", in, got)
		}
	}
}
