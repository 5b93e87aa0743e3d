package agentproto

import (
	"bytes"
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
