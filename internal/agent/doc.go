// Package agent is the pyro guest agent: PID 1 of the microVM. It sets up the
// minimal system, finds the virtio-serial port named agentproto.PortName and
// serves the agentproto protocol on it (a yamux server, one call per stream).
//
// Everything but this file is Linux only; on other systems the package is empty
// so that `go build ./...` on a macOS host still works.
package agent
