package mcp

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8080", "[::1]:0", "localhost:9"} {
		if err := CheckAddr(ok, false); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8080", "192.168.1.2:80", ":8080", "nonsense"} {
		if err := CheckAddr(bad, false); err == nil {
			t.Errorf("%s accepted without --allow-remote", bad)
		}
	}
	if err := CheckAddr("0.0.0.0:8080", true); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
}

func TestTokenFileAndAuth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "mcp-token")
	tok, err := newTokenFile(path)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q: %v", tok, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v: %v", st.Mode(), err)
	}
	h := requireToken(tok, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, tok: 401, "Bearer " + tok: 204} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/mcp", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("auth %q: %d, want %d", auth, rec.Code, want)
		}
	}
}
