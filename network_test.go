package pyro_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// hostListener serves "host-secret" on every address of this host; a guest
// must never read it.
func hostListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "HTTP/1.0 200 OK\r\n\r\nhost-secret\n")
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// hostAddresses are this host's own IPv4 addresses apart from loopback.
func hostAddresses(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// probeScript tries GET / on each host:port from the guest with bash's
// /dev/tcp (every environment has bash) and says REACHED or BLOCKED.
func probeScript(targets ...string) string {
	var b strings.Builder
	b.WriteString(`get() { if timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3"; then echo "REACHED $1:$2"; else echo "BLOCKED $1:$2"; fi; }` + "\n")
	for _, t := range targets {
		host, port, _ := strings.Cut(t, ":")
		fmt.Fprintf(&b, "get %s %s 2>/dev/null\n", host, port)
	}
	return b.String()
}

// One-shot runs with --network reach a machine outside, and nothing of this
// host: not its loopback services through the gateway, not any of its own
// addresses, not the link-local metadata address. Without --network the
// guest has no network device at all.
func TestRunNetworkEgress(t *testing.T) {
	c, _ := newClient(t)
	ctx := t.Context()
	out := testutil.NewOutside(t)
	port := hostListener(t)
	targets := []string{out.Addr, fmt.Sprintf("10.0.2.2:%d", port), "169.254.169.254:80"}
	for _, a := range hostAddresses(t) {
		targets = append(targets, fmt.Sprintf("%s:%d", a, port))
	}
	r, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Network: true, TimeoutSeconds: 60,
		Command: probeScript(targets...) + "cat /etc/resolv.conf; ls /sys/class/net"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stdout, out.Body) || !strings.Contains(r.Stdout, "REACHED "+out.Addr) {
		t.Errorf("the outside server was not reached:\n%s%s", r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "host-secret") {
		t.Errorf("the guest read a service of this host:\n%s", r.Stdout)
	}
	for _, tg := range targets[1:] {
		if !strings.Contains(r.Stdout, "BLOCKED "+tg) {
			t.Errorf("%s was not blocked:\n%s", tg, r.Stdout)
		}
	}
	if !strings.Contains(r.Stdout, fmt.Sprintf("BLOCKED %s:%d", out.HostSide, port)) || // this host's end of the outside link
		!strings.Contains(r.Stdout, "nameserver 10.0.2.2") || !strings.Contains(r.Stdout, "eth0") {
		t.Errorf("guest network config:\n%s", r.Stdout)
	}

	// The kernel's own virtual devices (lo, sit0) are there; no Ethernet.
	r, err = c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "ls /sys/class/net"})
	if err != nil || !strings.Contains(r.Stdout, "lo") || strings.Contains(r.Stdout, "eth") {
		t.Fatalf("without --network: %v %+v", err, r)
	}
}

// A workspace with egress+published-ports: a service's port is reachable on
// the host's 127.0.0.1 while it runs, egress works after a cold start too,
// and every misuse gets a clear error.
func TestWorkspacePublishedPorts(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	out := testutil.NewOutside(t)
	if _, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", NetworkPolicy: "everything"}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Fatalf("bad policy: %v", err)
	}
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress+published-ports"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), w.WorkspaceID) })
	if w.NetworkPolicy != "egress+published-ports" {
		t.Errorf("status policy %q", w.NetworkPolicy)
	}
	egress := func(when string) {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: probeScript(out.Addr)})
		if err != nil || !strings.Contains(r.Stdout, out.Body) {
			t.Fatalf("egress %s: %v %+v", when, err, r)
		}
	}
	egress("after create")

	s, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: w.WorkspaceID, Name: "web",
		Command: "echo published > index.html && exec python3 -m http.server 8000", ReadyHTTP: "http://127.0.0.1:8000/",
		Publish: []pyro.PortMapping{{GuestPort: 8000}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PublishedPorts) != 1 || s.PublishedPorts[0].HostAddress != "127.0.0.1" || s.PublishedPorts[0].HostPort == 0 || s.PublishedPorts[0].GuestPort != 8000 {
		t.Fatalf("published %+v", s.PublishedPorts)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", s.PublishedPorts[0].HostPort)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "published\n" {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
	}
	if l, err := c.ListServices(ctx, w.WorkspaceID); err != nil || len(l) != 1 || len(l[0].PublishedPorts) != 1 {
		t.Errorf("list %v %+v", err, l)
	}
	// A host port that is taken fails the start before the service runs.
	taken := s.PublishedPorts[0].HostPort
	_, err = c.StartService(ctx, pyro.StartServiceRequest{Workspace: w.WorkspaceID, Name: "web2", Command: "sleep 600",
		Publish: []pyro.PortMapping{{GuestPort: 9000, HostPort: taken}}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(taken)) {
		t.Errorf("publish on a taken port: %v", err)
	}
	if _, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: w.WorkspaceID, Name: "web2"}); pyro.ErrorCode(err) != "service_not_found" {
		t.Errorf("a failed publish left service web2: %v", err)
	}
	if _, err := c.StopService(ctx, pyro.ServiceRequest{Workspace: w.WorkspaceID, Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", taken), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still published after stop", taken)
	}

	// A service that ends on its own gives its port back.
	brief, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: w.WorkspaceID, Name: "brief",
		Command: "exec python3 -m http.server 8001", ReadyTCP: 8001, Publish: []pyro.PortMapping{{GuestPort: 8001}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "pkill -f 'http[.]server 8001'"}); err != nil || r.ExitCode != 0 {
		t.Fatalf("pkill: %v %+v", err, r)
	}
	briefAddr := fmt.Sprintf("127.0.0.1:%d", brief.PublishedPorts[0].HostPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: w.WorkspaceID, Name: "brief"})
		c, derr := net.DialTimeout("tcp", briefAddr, time.Second)
		if derr == nil {
			c.Close()
		}
		if err == nil && s.State == pyro.ServiceExited && len(s.PublishedPorts) == 0 && derr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the port of an exited service: %v %+v, dial %v", err, s, derr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A cold boot configures the network again.
	if _, err := c.StopWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartWorkspace(ctx, w.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	egress("after stop and start")

	// Publishing needs the policy that allows it.
	e := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12", NetworkPolicy: "egress"})
	_, err = c.StartService(ctx, pyro.StartServiceRequest{Workspace: e.WorkspaceID, Name: "web", Command: "sleep 600",
		Publish: []pyro.PortMapping{{GuestPort: 8000}}})
	if err == nil || !strings.Contains(err.Error(), "egress+published-ports") {
		t.Errorf("publish under egress: %v", err)
	}
	if _, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: e.WorkspaceID, Name: "web", Command: "sleep 1",
		Publish: []pyro.PortMapping{{GuestPort: 70000}}}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("guest port 70000: %v", err)
	}
}

// The low-level VM API reports the guest's network while it runs.
func TestVMNetworkInfo(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	if _, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", NetworkPolicy: "egress+published-ports"}); pyro.ErrorCode(err) != "invalid_argument" {
		t.Errorf("a low-level VM that could publish: %v", err)
	}
	v, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", NetworkPolicy: "egress"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteVM(context.Background(), v.VMID)
	if v.NetworkPolicy != "egress" {
		t.Errorf("vm %+v", v)
	}
	if n, err := c.VMNetworkInfo(ctx, v.VMID); err != nil || n.NetworkPolicy != "egress" || n.GuestAddress != "" {
		t.Fatalf("stopped: %v %+v", err, n)
	}
	if _, err := c.StartVM(ctx, v.VMID); err != nil {
		t.Fatal(err)
	}
	n, err := c.VMNetworkInfo(ctx, v.VMID)
	if err != nil || n.GuestAddress != "10.0.2.15/24" || n.Gateway != "10.0.2.2" || len(n.DNS) != 1 || n.MAC == "" || n.State != "running" {
		t.Fatalf("running: %v %+v", err, n)
	}
}
