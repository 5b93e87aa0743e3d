package testutil

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

// TarEntry is one entry of a test archive. A regular file's size is its
// Body's length.
type TarEntry struct {
	Header tar.Header
	Body   string
}

// Tar writes entries as a tar archive, exactly as given (crafted, even
// hostile, names and types included).
func Tar(t testing.TB, entries ...TarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}
