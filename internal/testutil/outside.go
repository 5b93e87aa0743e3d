package testutil

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var outsideSeq atomic.Int32

// Outside is an HTTP server on another machine, as far as a guest's network
// policy can tell: it lives in its own network namespace behind a veth pair.
// Addr (the server, in the namespace) is not an address of this host, while
// HostSide (this host's end of the veth) is one.
type Outside struct {
	Addr     string // "10.213.N.2:8080"
	HostSide string // "10.213.N.1"
	Body     string // what GET / answers
	Netns    string // the namespace's path under /run/netns
}

// NewOutside starts an Outside server for the test's life (needs root and
// iproute2's ip).
func NewOutside(t testing.TB) *Outside {
	t.Helper()
	removeDeadNamespaces()
	var ns, subnet string
	for attempt := 0; ; attempt++ {
		n := freeSubnet(t)
		ns, subnet = fmt.Sprintf("pyro-test-%d-%d", os.Getpid(), n), fmt.Sprintf("10.213.%d", n)
		err := makeNamespace(ns, fmt.Sprintf("pyv%dh", n), fmt.Sprintf("pyv%dn", n), subnet)
		if err == nil {
			break
		}
		_ = exec.Command("ip", "netns", "del", ns).Run()
		if attempt == 4 || !strings.Contains(err.Error(), "File exists") {
			t.Fatalf("test network %s: %v (needs root and iproute2)", ns, err)
		}
		// Another test process took the same subnet at the same moment.
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the veth pair with it

	o := &Outside{Addr: subnet + ".2:8080", HostSide: subnet + ".1", Body: "hello from outside " + ns + "\n", Netns: "/run/netns/" + ns}
	ln := listenIn(t, o.Netns, o.Addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, o.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

// makeNamespace makes netns ns linked to this host by a veth pair:
// hostIf with subnet.1 here, nsIf with subnet.2 there.
func makeNamespace(ns, hostIf, nsIf, subnet string) error {
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns},
		{"addr", "add", subnet + ".1/24", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "addr", "add", subnet + ".2/24", "dev", nsIf},
		{"-n", ns, "link", "set", nsIf, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// removeDeadNamespaces deletes the test namespaces of test processes that
// were killed before their cleanup ran.
func removeDeadNamespaces() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		var pid, n int
		if _, err := fmt.Sscanf(e.Name(), "pyro-test-%d-%d", &pid, &n); err != nil {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// freeSubnet picks N for 10.213.N.0/24 that no interface of the host uses
// (test processes run in parallel).
func freeSubnet(t testing.TB) int {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, a := range addrs {
		var n int
		if _, err := fmt.Sscanf(a.String(), "10.213.%d.", &n); err == nil {
			used[n] = true
		}
	}
	start := (os.Getpid()*7 + int(outsideSeq.Add(1))) % 250
	for i := range 250 {
		if n := (start + i) % 250; !used[n] {
			return n
		}
	}
	t.Fatal("no free 10.213.N.0/24 subnet for a test network")
	return 0
}

// listenIn opens a TCP listener inside the network namespace at nsPath. The
// socket stays in that namespace whatever thread uses it later.
func listenIn(t testing.TB, nsPath, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	inNamespace(t, nsPath, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln
}

// inNamespace runs open (which opens sockets) in the network namespace at
// nsPath.
func inNamespace(t testing.TB, nsPath string, open func() error) {
	t.Helper()
	type result struct {
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread changes namespace and is never unlocked: it exits
		// with the goroutine instead of going back to the pool.
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err}
			return
		}
		ch <- result{open()}
	}()
	if r := <-ch; r.err != nil {
		t.Fatalf("listen in %s: %v", nsPath, r.err)
	}
}
