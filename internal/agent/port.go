//go:build linux

package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// virtioPortsDir lists virtio-serial ports. There is no udev in the guest, so
// the /dev/virtio-ports/<name> symlinks do not exist: names come from sysfs.
const virtioPortsDir = "/sys/class/virtio-ports"

// foundPort is the device of the port last found (by name): a guest's
// ports never change once probed (microvm has no hotplug), so a reopen
// skips the scan of sysfs unless the device is gone.
var foundPort struct {
	sync.Mutex
	name, dev string
}

// openPort opens the virtio-serial port called name, retrying discovery for
// up to wait since the device may still be probing.
func openPort(name string, wait time.Duration) (*os.File, error) {
	foundPort.Lock()
	dev := foundPort.dev
	if foundPort.name != name {
		dev = ""
	}
	foundPort.Unlock()
	if dev != "" {
		if f, err := os.OpenFile(filepath.Join("/dev", dev), os.O_RDWR, 0); err == nil {
			return f, nil
		}
	}
	deadline := time.Now().Add(wait)
	for {
		dev, err := findPort(virtioPortsDir, name)
		if err == nil {
			foundPort.Lock()
			foundPort.name, foundPort.dev = name, dev
			foundPort.Unlock()
			var f *os.File
			if f, err = os.OpenFile(filepath.Join("/dev", dev), os.O_RDWR, 0); err == nil {
				return f, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		// The port appears moments after boot (virtio-serial adds ports
		// through its control queue); poll finely, it is on the boot path.
		time.Sleep(5 * time.Millisecond)
	}
}

// findPort returns the device name (e.g. "vport1p1") of the port called name.
func findPort(classDir, name string) (string, error) {
	entries, err := os.ReadDir(classDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(classDir, e.Name(), "name"))
		if err == nil && string(bytes.TrimSpace(b)) == name {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q in %s", name, classDir)
}
