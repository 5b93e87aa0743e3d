package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pyrovm/pyro/internal/testutil"
)

// An image with unaligned data, holes in the middle and at the end.
func sparseSource(t *testing.T) (string, []byte) {
	t.Helper()
	data := make([]byte, 5000+(1<<20)+10+(100<<10))
	for i := range 5000 {
		data[i] = byte(i%251 + 1)
	}
	copy(data[5000+(1<<20):], "0123456789")
	p := filepath.Join(t.TempDir(), "rootfs.ext4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestRoundTripSparse(t *testing.T) {
	host := testutil.Registry(t, "", "")
	src, data := sparseSource(t)
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	os.WriteFile(kernel, []byte("\x7fELF kernel"), 0o644)
	kb, err := Compress(t.Context(), kernel, filepath.Join(dir, "k.zst"), KernelMediaType, "vmlinux", nil)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	rb, err := Compress(t.Context(), src, filepath.Join(dir, "r.zst"), RootfsMediaType, "rootfs.ext4", func(done, total int64) { last = done })
	if err != nil || last != int64(len(data)) {
		t.Fatalf("compress: %v (progress %d)", err, last)
	}
	sum := sha256.Sum256(data)
	if rb.DiffID.Hex != hex.EncodeToString(sum[:]) || rb.Size >= int64(len(data))/10 {
		t.Fatalf("blob %+v", rb)
	}
	img, err := New([]byte(`{"name":"x"}`), kb, rb, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/pyro/x:1", name.Insecure)
	if err := Push(ref, img, nil); err != nil {
		t.Fatal(err)
	}

	a, err := Get(ref)
	if err != nil || a == nil || string(a.Config) != `{"name":"x"}` || a.Annotations["k"] != "v" || a.Rootfs.Digest != rb.Digest {
		t.Fatalf("get: %v %+v", err, a)
	}
	out := filepath.Join(t.TempDir(), "rootfs.ext4")
	if err := a.Extract(t.Context(), a.Rootfs, out, Want{SHA256: rb.DiffID.Hex, Size: int64(len(data))}, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatal("extracted bytes differ")
	}
	var st syscall.Stat_t
	syscall.Stat(out, &st)
	if st.Blocks*512 >= 64<<10 {
		t.Errorf("not sparse: %d bytes allocated", st.Blocks*512)
	}
	// A wrong expectation is refused.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := a.Extract(t.Context(), a.Rootfs, bad, Want{SHA256: rb.DiffID.Hex, Size: int64(len(data)) - 1}, nil); err == nil {
		t.Fatal("a size mismatch was accepted")
	}

	// An ordinary image is not an artifact.
	plain, _ := name.ParseReference(host+"/plain:1", name.Insecure)
	testutil.Push(t, plain.String(), testutil.Image(t, nil, testutil.Tar(t)))
	if a, err := Get(plain, remote.WithContext(t.Context())); err != nil || a != nil {
		t.Fatalf("plain image: %v %+v", err, a)
	}
}
