package network

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// serveGuest accepts on a guest listener and runs handle on each connection.
func serveGuest(l *gonet.TCPListener, handle func(net.Conn)) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

func dialHost(t *testing.T, port int) (net.Conn, error) {
	t.Helper()
	return net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
}

func TestPublish(t *testing.T) {
	s, g := newNet(t, netOpts{policy: PolicyEgressPublish})
	serveGuest(g.listen(t, 8000), func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("hello"))
	})

	p, err := s.Publish(8000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.GuestPort != 8000 || p.HostPort == 0 || p.HostAddress != "127.0.0.1" {
		t.Fatalf("Publish = %+v", p)
	}
	c, err := dialHost(t, p.HostPort)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want hello", got, err)
	}
	if list := s.Published(); len(list) != 1 || list[0] != p {
		t.Fatalf("Published() = %+v", list)
	}
	if info := s.Info(); len(info.Published) != 1 || info.Policy != PolicyEgressPublish ||
		info.GuestAddress != "10.0.2.15/24" || info.Gateway != "10.0.2.2" || info.MAC != GuestMAC {
		t.Fatalf("Info() = %+v", info)
	}

	// A host port in use is a typed error.
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = s.Publish(8000, int(portOf(taken.Addr())))
	if !errdefs.IsInvalidArgument(err) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Publish on a taken port: %v", err)
	}
	for _, ports := range [][2]int{{0, 0}, {65536, 0}, {8000, -1}, {8000, 65536}} {
		if _, err := s.Publish(ports[0], ports[1]); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Publish(%d, %d) = %v, want invalid argument", ports[0], ports[1], err)
		}
	}

	// A guest port nobody listens on: the host connection is dropped at once.
	p2, err := s.Publish(9999, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := dialHost(t, p2.HostPort); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
			t.Fatalf("read %d, %v from a closed guest port", n, err)
		}
		c.Close()
	}
	if list := s.Published(); len(list) != 2 || list[0].HostPort > list[1].HostPort {
		t.Fatalf("Published() not sorted: %+v", list)
	}

	if err := s.Unpublish(p.HostPort); err != nil {
		t.Fatal(err)
	}
	if c, err := dialHost(t, p.HostPort); err == nil {
		c.Close()
		t.Fatal("dial succeeded after Unpublish")
	}
	if err := s.Unpublish(p.HostPort); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("second Unpublish = %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUnpublishClosesLiveConnections(t *testing.T) {
	s, g := newNet(t, netOpts{policy: PolicyEgressPublish})
	serveGuest(g.listen(t, 8001), func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
	p, err := s.Publish(8001, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialHost(t, p.HostPort)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if err := s.Unpublish(p.HostPort); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err == nil || isTimeout(err) {
		t.Fatalf("live connection survived Unpublish: read %d, %v", n, err)
	}
}

func TestPublishNeedsPolicy(t *testing.T) {
	s, _ := newNet(t, netOpts{policy: PolicyEgress})
	_, err := s.Publish(8000, 0)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Publish with policy egress = %v", err)
	}
	t.Log(err)
}
