package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// The disk operations run qemu-img on real files: an overlay over a raw
// image, a layer over the overlay, and their raw export.
func TestDiskLayersAndExport(t *testing.T) {
	if _, err := qemuImg(); err != nil {
		t.Skip(err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	image := filepath.Join(dir, "rootfs.ext4")
	want := bytes.Repeat([]byte("pyro disk "), 200_000) // 2 MB, not a multiple of a cluster
	if err := os.WriteFile(image, want, 0o444); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, DiskFile)
	if err := ensureOverlay(ctx, overlay, image); err != nil {
		t.Fatal(err)
	}
	if chain, err := BackingFiles(ctx, overlay); err != nil || !slices.Equal(chain, []string{image}) {
		t.Fatalf("backing files of the overlay: %v %v", chain, err)
	}
	layer := filepath.Join(dir, "layer.qcow2")
	if err := os.Rename(overlay, layer); err != nil {
		t.Fatal(err)
	}
	if err := NewLayer(ctx, overlay, layer); err != nil {
		t.Fatal(err)
	}
	if chain, err := BackingFiles(ctx, overlay); err != nil || !slices.Equal(chain, []string{layer, image}) {
		t.Fatalf("backing files of a layered disk: %v %v", chain, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	out, err := os.Create(filepath.Join(dir, "export.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := ExportRaw(ctx, overlay, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(want)], want) || len(got) < len(want) {
		t.Fatalf("export: %d bytes, want the image's %d", len(got), len(want))
	}

	// A disk that is not one is a typed error naming it; a canceled call
	// is the context's error.
	bad, _ := os.Create(filepath.Join(dir, "bad.raw"))
	defer bad.Close()
	err = ExportRaw(ctx, filepath.Join(dir, "missing.qcow2"), bad)
	if errdefs.CodeOf(err) != errdefs.CodeInternal || !bytes.Contains([]byte(err.Error()), []byte("missing.qcow2")) {
		t.Errorf("export of a missing disk: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ExportRaw(cctx, overlay, bad); err != context.Canceled {
		t.Errorf("canceled export: %v", err)
	}
}
