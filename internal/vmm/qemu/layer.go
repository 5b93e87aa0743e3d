package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// NewLayer creates (atomically, through a temp file) a qcow2 disk at path
// whose reads fall through to base, a qcow2 disk that must never change
// again: forks of a workspace share it this way, copying nothing.
func NewLayer(ctx context.Context, path, base string) error {
	img, err := qemuImg()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	out, err := exec.CommandContext(ctx, img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, tmp).CombinedOutput()
	if err == nil {
		err = syncFile(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return errdefs.Wrap(fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))), errdefs.ErrInternal, errdefs.CodeVMMFailed, "create a disk layer")
	}
	return os.Rename(tmp, path)
}

// BackingFiles lists the files a qcow2 disk reads through (its backing
// chain, nearest first, without the disk itself). It opens the disk
// without taking QEMU's lock (-U), so a running VM's disk can be read.
func BackingFiles(ctx context.Context, disk string) ([]string, error) {
	img, err := qemuImg()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, img, "info", "-U", "--backing-chain", "--output=json", disk).Output()
	if err != nil {
		return nil, fmt.Errorf("qemu-img info %s: %w", disk, err)
	}
	var chain []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(out, &chain); err != nil {
		return nil, fmt.Errorf("qemu-img info %s: %w", disk, err)
	}
	var files []string
	for i, c := range chain {
		if i > 0 {
			files = append(files, c.Filename)
		}
	}
	return files, nil
}

func qemuImg() (string, error) {
	img, err := exec.LookPath("qemu-img")
	if err != nil {
		return "", errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"qemu-img is not installed: install it with: apt-get install -y qemu-utils")
	}
	return img, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Layers is NewLayer and BackingFiles as a vmm.Layers.
type Layers struct{}

func (Layers) NewLayer(ctx context.Context, path, base string) error {
	return NewLayer(ctx, path, base)
}

func (Layers) BackingFiles(ctx context.Context, disk string) ([]string, error) {
	return BackingFiles(ctx, disk)
}
