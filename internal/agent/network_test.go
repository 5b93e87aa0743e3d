//go:build linux

package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func goodNetConfig() agentproto.NetConfig {
	return agentproto.NetConfig{
		MAC:     "52:54:00:12:34:56",
		Address: "10.0.2.15/24",
		Gateway: "10.0.2.2",
		DNS:     []string{"10.0.2.3"},
		MTU:     1500,
	}
}

func TestParseNetConfig(t *testing.T) {
	good := goodNetConfig()
	n, err := parseNetConfig(&good)
	if err != nil {
		t.Fatal(err)
	}
	if n.mac.String() != "52:54:00:12:34:56" || n.addr.String() != "10.0.2.15/24" || n.gateway.String() != "10.0.2.2" ||
		len(n.dns) != 1 || n.dns[0].String() != "10.0.2.3" || n.mtu != 1500 {
		t.Errorf("parsed %+v", n)
	}
	for _, ok := range []func(c *agentproto.NetConfig){
		func(c *agentproto.NetConfig) { c.MTU = 0 },
		func(c *agentproto.NetConfig) { c.MTU = minMTU },
		func(c *agentproto.NetConfig) { c.MTU = maxMTU },
		func(c *agentproto.NetConfig) { c.DNS = nil },
		func(c *agentproto.NetConfig) { c.DNS = []string{"1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"} },
		func(c *agentproto.NetConfig) { c.MAC = "52-54-00-AB-CD-EF" },
		func(c *agentproto.NetConfig) { c.Address, c.Gateway = "192.168.7.0/31", "192.168.7.1" },
	} {
		c := goodNetConfig()
		ok(&c)
		if _, err := parseNetConfig(&c); err != nil {
			t.Errorf("%+v refused: %v", c, err)
		}
	}
	bad := []struct {
		change func(c *agentproto.NetConfig)
		want   string
	}{
		{func(c *agentproto.NetConfig) { c.MAC = "" }, "bad MAC"},
		{func(c *agentproto.NetConfig) { c.MAC = "52:54:00:12:34" }, "bad MAC"},
		{func(c *agentproto.NetConfig) { c.MAC = "52:54:00:12:34:56:78:9a" }, "bad MAC"}, // EUI-64
		{func(c *agentproto.NetConfig) { c.Address = "10.0.2.15" }, "bad address"},
		{func(c *agentproto.NetConfig) { c.Address = "10.0.2.300/24" }, "bad address"},
		{func(c *agentproto.NetConfig) { c.Address, c.Gateway = "fd00::15/64", "fd00::2" }, "not IPv4"},
		{func(c *agentproto.NetConfig) { c.Address = "::ffff:10.0.2.15/120" }, "not IPv4"},
		{func(c *agentproto.NetConfig) { c.Address = "10.0.2.15/0" }, "prefix length"},
		{func(c *agentproto.NetConfig) { c.Address = "10.0.2.15/32" }, "prefix length"},
		{func(c *agentproto.NetConfig) { c.Address, c.Gateway = "127.0.0.5/8", "127.0.0.1" }, "not a unicast"},
		{func(c *agentproto.NetConfig) { c.Gateway = "10.0.3.2" }, "outside 10.0.2.0/24"},
		{func(c *agentproto.NetConfig) { c.Gateway = "10.0.2.15" }, "own address"},
		{func(c *agentproto.NetConfig) { c.Gateway = "" }, "bad gateway"},
		{func(c *agentproto.NetConfig) { c.Gateway = "fd00::2" }, "bad gateway"},
		{func(c *agentproto.NetConfig) { c.DNS = []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"} }, "at most 3"},
		{func(c *agentproto.NetConfig) { c.DNS = []string{"dns.example"} }, "bad DNS"},
		{func(c *agentproto.NetConfig) { c.DNS = []string{"fe80::1%eth0\nnameserver 6.6.6.6"} }, "bad DNS"},
		{func(c *agentproto.NetConfig) { c.MTU = minMTU - 1 }, "MTU"},
		{func(c *agentproto.NetConfig) { c.MTU = maxMTU + 1 }, "MTU"},
		{func(c *agentproto.NetConfig) { c.MTU = -1 }, "MTU"},
	}
	for _, b := range bad {
		c := goodNetConfig()
		b.change(&c)
		_, err := parseNetConfig(&c)
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), "network: ") {
			t.Errorf("%+v: err = %v, want one naming %q", c, err, b.want)
		}
	}
}

func TestApplyHelloRejectsBadNetwork(t *testing.T) {
	// Refused before anything touches the system, so no root needed.
	c := goodNetConfig()
	c.Gateway = "192.168.0.1"
	if err := applyHello(&agentproto.HelloRequest{Network: &c}); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("err = %v", err)
	}
}

func TestWriteResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	servers := []string{"10.0.2.3", "2606:4700:4700::1111"}
	c := goodNetConfig()
	c.DNS = servers
	n, err := parseNetConfig(&c)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) os.FileInfo {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want a regular file 0644", what, fi.Mode())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				ns = append(ns, l)
			}
		}
		if want := []string{"nameserver 10.0.2.3", "nameserver 2606:4700:4700::1111"}; !slices.Equal(ns, want) {
			t.Errorf("%s: content %q, want the lines %q", what, b, want)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".resolv.conf") {
				t.Errorf("%s: temporary file %s left behind", what, e.Name())
			}
		}
		return fi
	}

	// No file yet.
	defer syscall.Umask(syscall.Umask(0o077)) // the mode must not depend on the umask
	if err := writeResolvConf(path, n.dns); err != nil {
		t.Fatal(err)
	}
	fi1 := check("new")

	// Same content again: left untouched.
	if err := writeResolvConf(path, n.dns); err != nil {
		t.Fatal(err)
	}
	if fi2 := check("again"); !os.SameFile(fi1, fi2) {
		t.Error("identical content rewritten")
	}

	// A regular file with other content, and a wrong mode.
	if err := os.WriteFile(path, []byte("nameserver 9.9.9.9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(path, n.dns); err != nil {
		t.Fatal(err)
	}
	check("replaced file")

	// A symlink to an existing file: the link is replaced, the target kept.
	target := filepath.Join(dir, "stub-resolv.conf")
	if err := os.WriteFile(target, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(path, n.dns); err != nil {
		t.Fatal(err)
	}
	check("symlink")
	if b, _ := os.ReadFile(target); string(b) != "nameserver 127.0.0.53\n" {
		t.Errorf("symlink target changed: %q", b)
	}

	// A dangling symlink (systemd-resolved's file in an image without it).
	os.Remove(path)
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", path); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(path, n.dns); err != nil {
		t.Fatal(err)
	}
	check("dangling symlink")

	// A directory in the way: an error, and no temporary file left.
	os.Remove(path)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeResolvConf(path, n.dns); err == nil {
		t.Error("replaced a non-empty directory")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".resolv.conf") {
			t.Errorf("temporary file %s left behind after a failure", e.Name())
		}
	}
}

// inNewNetns runs f on a goroutine locked to a thread in a fresh network
// namespace. The goroutine never unlocks, so the thread exits with it and no
// other goroutine ever runs in that namespace. f reports with t.Errorf.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- nil
		f()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("unshare(CLONE_NEWNET): %v", err)
	}
	<-done
}

// addTestLink adds a link named name with hardware address mac: a dummy, or
// where the kernel has no dummy driver a veth pair whose peer is up (so that
// the link has carrier once up).
func addTestLink(name string, mac net.HardwareAddr) error {
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = name, mac, 1500
	err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: la})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	peer := name + "p"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
		return fmt.Errorf("no dummy driver; veth: %w", err)
	}
	pl, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(pl)
}

// inSameNetnsLater runs f after delay on another thread, in the calling
// thread's network namespace; the returned channel closes when f returned.
func inSameNetnsLater(delay time.Duration, f func() error) <-chan error {
	res := make(chan error, 1)
	fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		res <- err
		return res
	}
	go func() {
		defer unix.Close(fd)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			res <- err
			return
		}
		time.Sleep(delay)
		res <- f()
	}()
	return res
}

func TestApplyNetworkInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	oldPath, oldWait := resolvConfPath, linkWait
	resolvConfPath = filepath.Join(t.TempDir(), "resolv.conf")
	linkWait = 300 * time.Millisecond
	t.Cleanup(func() { resolvConfPath, linkWait = oldPath, oldWait })

	inNewNetns(t, func() {
		const mac = "52:54:00:12:34:56"
		hw, _ := net.ParseMAC(mac)
		if err := addTestLink("pyro0", hw); err != nil {
			t.Errorf("add link: %v", err)
			return
		}
		// A bystander with another MAC and an address that must stay.
		if err := addTestLink("other0", net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}); err != nil {
			t.Errorf("add link: %v", err)
			return
		}
		olink, _ := netlink.LinkByName("other0")
		oaddr, _ := netlink.ParseAddr("172.16.0.1/16")
		if err := netlink.AddrAdd(olink, oaddr); err != nil {
			t.Errorf("add bystander address: %v", err)
			return
		}

		apply := func(c agentproto.NetConfig) error {
			n, err := parseNetConfig(&c)
			if err != nil {
				return err
			}
			return applyNetwork(n)
		}
		// verify checks the link against c and reports problems with what.
		verify := func(what string, c agentproto.NetConfig, mtu int) {
			link, err := netlink.LinkByName("pyro0")
			if err != nil {
				t.Errorf("%s: %v", what, err)
				return
			}
			if link.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("%s: link is down", what)
			}
			if link.Attrs().MTU != mtu {
				t.Errorf("%s: MTU %d, want %d", what, link.Attrs().MTU, mtu)
			}
			addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
			if err != nil {
				t.Errorf("%s: %v", what, err)
				return
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.IPNet.String())
			}
			if !slices.Equal(got, []string{c.Address}) {
				t.Errorf("%s: addresses %v, want exactly [%s]", what, got, c.Address)
			}
			routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
			if err != nil {
				t.Errorf("%s: %v", what, err)
				return
			}
			var defaults []netlink.Route
			for _, r := range routes {
				if r.Dst == nil || (r.Dst.IP.IsUnspecified() && net.IP(r.Dst.Mask).IsUnspecified()) {
					defaults = append(defaults, r)
				}
			}
			if len(defaults) != 1 || !defaults[0].Gw.Equal(net.ParseIP(c.Gateway)) || defaults[0].LinkIndex != link.Attrs().Index {
				t.Errorf("%s: default routes %v, want one via %s dev pyro0", what, defaults, c.Gateway)
			}
			if len(c.DNS) > 0 {
				b, err := os.ReadFile(resolvConfPath)
				want := ""
				for _, d := range c.DNS {
					want += "nameserver " + d + "\n"
				}
				if err != nil || !strings.HasSuffix(string(b), "\n"+want) || strings.Count(string(b), "nameserver") != len(c.DNS) {
					t.Errorf("%s: resolv.conf %q (%v), want the lines %q", what, b, err, want)
				}
			}
			oaddrs, _ := netlink.AddrList(olink, netlink.FAMILY_V4)
			if len(oaddrs) != 1 || oaddrs[0].IPNet.String() != "172.16.0.1/16" {
				t.Errorf("%s: the other link's addresses changed: %v", what, oaddrs)
			}
		}

		c := goodNetConfig()
		c.MTU = 1400
		if err := apply(c); err != nil {
			t.Errorf("first apply: %v", err)
			return
		}
		verify("first apply", c, 1400)

		// Idempotent, and through applyHello as a restored guest gets it.
		if err := applyHello(&agentproto.HelloRequest{Network: &c}); err != nil {
			t.Errorf("second apply: %v", err)
		}
		verify("second apply", c, 1400)

		// Another address in the same subnet: the old primary must go
		// without taking the new one (its secondary) with it.
		c.Address, c.MTU = "10.0.2.16/24", 0
		if err := apply(c); err != nil {
			t.Errorf("same-subnet change: %v", err)
		}
		verify("same-subnet change", c, 1400) // MTU 0 leaves it

		// Another subnet, gateway and DNS; stray addresses removed.
		for _, s := range []string{"192.168.50.5/24", "10.0.9.7/16"} {
			a, _ := netlink.ParseAddr(s)
			link, _ := netlink.LinkByName("pyro0")
			if err := netlink.AddrAdd(link, a); err != nil {
				t.Errorf("add stray %s: %v", s, err)
			}
		}
		c = agentproto.NetConfig{MAC: "52:54:00:12:34:56", Address: "192.168.100.10/24", Gateway: "192.168.100.1",
			DNS: []string{"192.168.100.1", "1.1.1.1"}, MTU: 9000}
		if err := apply(c); err != nil {
			t.Errorf("new subnet: %v", err)
		}
		verify("new subnet", c, 9000)

		// Unknown MAC: an error naming it, after the wait.
		bad := c
		bad.MAC = "52:54:00:de:ad:00"
		start := time.Now()
		err := apply(bad)
		if err == nil || !strings.Contains(err.Error(), "network: no interface with MAC 52:54:00:de:ad:00") {
			t.Errorf("unknown MAC: err = %v", err)
		}
		if d := time.Since(start); d < linkWait {
			t.Errorf("unknown MAC: gave up after %v, before the %v wait", d, linkWait)
		}
		verify("after the unknown MAC", c, 9000)

		// Bad configs change nothing.
		for _, change := range []func(c *agentproto.NetConfig){
			func(c *agentproto.NetConfig) { c.MAC = "nope" },
			func(c *agentproto.NetConfig) { c.Gateway = "10.0.0.1" },
			func(c *agentproto.NetConfig) { c.Address, c.Gateway = "fd00::5/64", "fd00::1" },
		} {
			b := c
			change(&b)
			if err := apply(b); err == nil {
				t.Errorf("%+v accepted", b)
			}
		}
		verify("after bad configs", c, 9000)

		// A link that shows up while the agent waits (the driver still probing).
		linkWait = 2 * time.Second
		added := inSameNetnsLater(300*time.Millisecond, func() error {
			return addTestLink("late0", net.HardwareAddr{0x52, 0x54, 0, 0x11, 0x22, 0x33})
		})
		lc := agentproto.NetConfig{MAC: "52:54:00:11:22:33", Address: "10.5.0.2/30", Gateway: "10.5.0.1"}
		if err := apply(lc); err != nil {
			t.Errorf("late link: %v", err)
		}
		if err := <-added; err != nil {
			t.Errorf("add the late link: %v", err)
		}
		if link, err := netlink.LinkByName("late0"); err != nil || link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("late link not configured: %v", err)
		}
	})
}
