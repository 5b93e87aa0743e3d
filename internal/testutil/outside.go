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
}

// NewOutside starts an Outside server for the test's life (needs root and
// iproute2's ip).
func NewOutside(t testing.TB) *Outside {
	t.Helper()
	n := freeSubnet(t)
	ns := fmt.Sprintf("pyro-test-%d-%d", os.Getpid(), n)
	hostIf, nsIf := fmt.Sprintf("pyv%dh", n), fmt.Sprintf("pyv%dn", n)
	subnet := fmt.Sprintf("10.213.%d", n)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() }) // takes the veth pair with it
	run("link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	run("addr", "add", subnet+".1/24", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", ns, "addr", "add", subnet+".2/24", "dev", nsIf)
	run("-n", ns, "link", "set", nsIf, "up")
	run("-n", ns, "link", "set", "lo", "up")

	o := &Outside{Addr: subnet + ".2:8080", HostSide: subnet + ".1", Body: "hello from outside " + ns + "\n"}
	ln := listenIn(t, "/run/netns/"+ns, o.Addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, o.Body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
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
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread changes namespace and is never unlocked: it exits
		// with the goroutine instead of going back to the pool.
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", nsPath, r.err)
	}
	return r.ln
}
