package qemu

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// DiskFile is the name of a machine's writable disk: a qcow2 overlay over
// the environment's raw image (or over a fork's shared layer).
const DiskFile = "disk.qcow2"

// NewLayer creates (atomically, through a temp file) a qcow2 disk at path
// whose reads fall through to base, a qcow2 disk that must never change
// again: forks of a workspace share it this way, copying nothing.
func NewLayer(ctx context.Context, path, base string) error {
	img, err := qemuImg()
	if err != nil {
		return err
	}
	// The size comes from base's header and -u keeps qemu-img from opening
	// base: a running machine may hold it (a fork of a running workspace
	// makes the new top over the disk QEMU still writes), and QEMU's lock
	// would refuse the open.
	size, err := qcow2Size(base)
	if err != nil {
		return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "create a disk layer")
	}
	tmp := path + ".tmp"
	out, err := exec.CommandContext(ctx, img, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, "-u", tmp, strconv.FormatUint(size, 10)).CombinedOutput()
	if err == nil {
		err = syncFile(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return errdefs.Wrap(fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))), errdefs.ErrInternal, errdefs.CodeVMMFailed, "create a disk layer")
	}
	return os.Rename(tmp, path)
}

// qcow2Size reads the virtual size from a qcow2 header: magic "QFI\xfb",
// then the size as a big-endian uint64 at byte 24.
func qcow2Size(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [32]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, fmt.Errorf("read the qcow2 header of %s: %w", path, err)
	}
	if string(h[:4]) != "QFI\xfb" {
		return 0, fmt.Errorf("%s is not a qcow2 disk", path)
	}
	return binary.BigEndian.Uint64(h[24:32]), nil
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

// ExportRaw writes the disk a qcow2 file stands for (its writes over its
// backing chain) as one sparse raw image into out. qemu-img writes through
// the open file (fd 3), never a path that could be swapped meanwhile.
func ExportRaw(ctx context.Context, disk string, out *os.File) error {
	img, err := qemuImg()
	if err != nil {
		return err
	}
	stderr := &capWriter{max: 64 << 10}
	cmd := exec.CommandContext(ctx, img, "convert", "-q", "-f", "qcow2", "-O", "raw", disk, "/dev/fd/3")
	cmd.Stderr = stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.ExtraFiles = []*os.File{out}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // canceled, or the caller's timeout
		}
		return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal,
			"qemu-img could not read the disk %s (%s)", disk, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// capWriter keeps the first max bytes written to it and drops the rest.
type capWriter struct {
	buf []byte
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *capWriter) String() string { return string(w.buf) }
