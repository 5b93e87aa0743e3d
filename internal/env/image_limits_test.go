package env

import (
	"archive/tar"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

// A layer that unpacks past the host's bound (a small compressed blob of
// zeros; many empty files) is image_too_large, leaves nothing, and the same
// image converts under a larger bound.
func TestPullImageUnpackLimits(t *testing.T) {
	host := testutil.Registry(t, "", "")
	s := imageStore(t, host)
	s.opts.MaxUnpackedBytes = 8 << 20
	testutil.Push(t, host+"/zeros:1", busyboxImage(t, layerOf(t, reg("big/zeros", strings.Repeat("\x00", 16<<20), 0o644))))
	_, err := s.PullWith(t.Context(), host+"/zeros:1", PullOptions{DiskSize: testDisk})
	if errdefs.CodeOf(err) != errdefs.CodeImageTooLarge || !strings.Contains(err.Error(), "PYRO_MAX_UNPACKED_MIB") {
		t.Fatalf("unpacked size over the bound: %v", err)
	}
	assertNothingHalfway(t, s)

	s.opts.MaxUnpackedBytes, s.opts.MaxUnpackedFiles = 0, 50
	var many []testutil.TarEntry
	for i := range 100 {
		many = append(many, testutil.TarEntry{Header: tar.Header{Typeflag: tar.TypeReg, Name: "many/f" + strings.Repeat("x", i), Mode: 0o644}})
	}
	testutil.Push(t, host+"/many:1", busyboxImage(t, layerOf(t, many...)))
	if _, err := s.PullWith(t.Context(), host+"/many:1", PullOptions{DiskSize: testDisk}); errdefs.CodeOf(err) != errdefs.CodeImageTooLarge {
		t.Fatalf("file count over the bound: %v", err)
	}
	assertNothingHalfway(t, s)

	s.opts.MaxUnpackedBytes, s.opts.MaxUnpackedFiles = 64<<20, 0
	if _, err := s.PullWith(t.Context(), host+"/zeros:1", PullOptions{DiskSize: testDisk}); err != nil {
		t.Fatalf("under a larger bound: %v", err)
	}
}
