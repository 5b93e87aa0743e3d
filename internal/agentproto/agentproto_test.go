package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, FrameRequest, Request{Op: OpHello}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&b, FrameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	k, p, err := ReadFrame(&b)
	if err != nil || k != FrameRequest || string(p) != `{"op":"hello"}` {
		t.Fatalf("%d %q %v", k, p, err)
	}
	k, p, err = ReadFrame(&b)
	if err != nil || k != FrameStdout || string(p) != "hi" {
		t.Fatalf("%d %q %v", k, p, err)
	}
	if _, _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	if err := WriteFrame(io.Discard, FrameStdout, make([]byte, MaxFramePayload+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized write: %v", err)
	}
	huge := []byte{FrameStdout, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := ReadFrame(bytes.NewReader(huge)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized read: %v", err)
	}
	short := []byte{FrameStdout, 0, 0, 0, 9, 'a'}
	if _, _, err := ReadFrame(bytes.NewReader(short)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short read: %v", err)
	}
}

func TestHelloRequestNetworkJSON(t *testing.T) {
	b, err := json.Marshal(HelloRequest{HostTimeUnixNano: 1})
	if err != nil || string(b) != `{"host_time_unix_nano":1}` {
		t.Errorf("without a network: %s %v", b, err)
	}
	req := HelloRequest{Network: &NetConfig{MAC: "52:54:00:12:34:56", Address: "10.0.2.15/24", Gateway: "10.0.2.2"}}
	b, err = json.Marshal(req)
	want := `{"network":{"mac":"52:54:00:12:34:56","address":"10.0.2.15/24","gateway":"10.0.2.2"}}`
	if err != nil || string(b) != want {
		t.Errorf("got %s %v, want %s", b, err, want)
	}
	req.Network.DNS, req.Network.MTU = []string{"10.0.2.3"}, 1500
	b, _ = json.Marshal(req)
	var back HelloRequest
	if err := json.Unmarshal(b, &back); err != nil || back.Network == nil || back.Network.MTU != 1500 ||
		len(back.Network.DNS) != 1 || back.Network.DNS[0] != "10.0.2.3" || back.Network.Gateway != "10.0.2.2" {
		t.Errorf("round trip of %s: %+v %v", b, back.Network, err)
	}
}
