//go:build linux

package agent

import (
	"log"
	"time"

	"golang.org/x/sys/unix"
)

// powerOff stops the VM. It reboots rather than powering off: the VMM runs
// QEMU with -no-reboot and the kernel with reboot=t, so a reboot makes QEMU
// exit, which needs no ACPI in the guest.
func powerOff() {
	log.Print("shutting down")
	_ = unix.Kill(-1, unix.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	_ = unix.Kill(-1, unix.SIGKILL)
	// SIGKILL is asynchronous: give the dead a moment to close their files so
	// the read-only remount does not fail with EBUSY.
	time.Sleep(20 * time.Millisecond)
	unix.Sync()
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		log.Printf("remounting / read-only: %v", err)
		unix.Sync()
	}
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		log.Printf("reboot: %v", err)
	}
}
