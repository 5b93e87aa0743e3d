package agentclient

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// A guest that ignores the limit is cut off by the host.
func TestGetArchiveCapsWhatTheGuestSends(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		chunk := make([]byte, dataChunk)
		for agentproto.WriteFrame(st, agentproto.FrameData, chunk) == nil {
		}
	})
	var got bytes.Buffer
	const maxBytes = 10 << 20
	_, err := c.GetArchive(t.Context(), "/workspace", maxBytes, &got)
	if errdefs.CodeOf(err) != CodeTooLarge || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("err = %v", err)
	}
	if int64(got.Len()) > tarAllowance(maxBytes) {
		t.Errorf("passed on %d bytes", got.Len())
	}
}

func TestGetArchiveSendsLimitAndRefusesLies(t *testing.T) {
	var seen *agentproto.ArchiveRequest
	c := fakeAgent(t, func(st net.Conn, req agentproto.Request) {
		seen = req.Archive
		agentproto.WriteFrame(st, agentproto.FrameData, []byte("tar"))
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ArchiveResult{Entries: 1, Bytes: 5000})
	})
	_, err := c.GetArchive(t.Context(), "/workspace/x", 0, io.Discard)
	if err != nil {
		t.Fatal(err) // 5000 bytes are within the default limit
	}
	if seen == nil || seen.Path != "/workspace/x" || seen.MaxBytes != DefaultArchiveMaxBytes {
		t.Fatalf("request %+v", seen)
	}
	_, err = c.GetArchive(t.Context(), "/workspace/x", 100, io.Discard)
	if errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
		t.Fatalf("result over the limit: %v", err)
	}
}

// A result before the end of the archive is a broken agent, not a success.
func TestPutArchiveRefusesEarlyResult(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ArchiveResult{})
	})
	done := make(chan error, 1)
	go func() {
		_, err := c.PutArchive(t.Context(), "/workspace", nil, endlessZeros{})
		done <- err
	}()
	select {
	case err := <-done:
		if errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PutArchive kept sending after the answer")
	}
}

func TestPutArchiveSendsFramesAndEnd(t *testing.T) {
	var got []byte
	var kinds []byte
	c := fakeAgent(t, func(st net.Conn, req agentproto.Request) {
		for {
			kind, payload, err := agentproto.ReadFrame(st)
			if err != nil {
				return
			}
			kinds = append(kinds, kind)
			if kind == agentproto.FrameDataEnd {
				agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ArchiveResult{Entries: 2, Bytes: int64(len(got))})
				return
			}
			if len(payload) > dataChunk {
				agentproto.WriteJSON(st, agentproto.FrameError, agentproto.Error{Code: agentproto.ErrCodeBadRequest, Message: "frame too big"})
				return
			}
			got = append(got, payload...)
		}
	})
	data := bytes.Repeat([]byte("pyro"), 50_000)
	res, err := c.PutArchive(t.Context(), "/workspace", nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) || res.Bytes != int64(len(data)) || kinds[len(kinds)-1] != agentproto.FrameDataEnd {
		t.Fatalf("agent got %d bytes in %d frames, result %+v", len(got), len(kinds), res)
	}
}

func TestArchiveWireErrors(t *testing.T) {
	for code, want := range map[string]struct {
		code  string
		class error
		hint  string
	}{
		agentproto.ErrCodeOutside:     {CodePathOutsideWorkspace, errdefs.ErrInvalidArgument, "relative to /workspace"},
		agentproto.ErrCodeNotFound:    {CodeNotFound, errdefs.ErrNotFound, "check the path"},
		agentproto.ErrCodeTooLarge:    {CodeTooLarge, errdefs.ErrInvalidArgument, "smaller"},
		agentproto.ErrCodeBadArchive:  {CodeBadArchive, errdefs.ErrInvalidArgument, "the detail"},
		agentproto.ErrCodeInternal:    {errdefs.CodeInternal, errdefs.ErrInternal, "the detail"},
		agentproto.ErrCodeUnsupported: {errdefs.CodeAgentProtocol, errdefs.ErrFailedPrecondition, "the detail"},
		agentproto.ErrCodeNoSpace:     {errdefs.CodeNoSpace, errdefs.ErrFailedPrecondition, "free space"},
	} {
		c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
			agentproto.WriteJSON(st, agentproto.FrameError, agentproto.Error{Code: code, Message: "the detail"})
		})
		_, err := c.GetArchive(t.Context(), "/workspace", 0, io.Discard)
		if errdefs.CodeOf(err) != want.code || !errors.Is(err, want.class) ||
			!strings.Contains(err.Error(), "the detail") || !strings.Contains(err.Error(), want.hint) {
			t.Errorf("%s: %v", code, err)
		}
	}
}

type endlessZeros struct{}

func (endlessZeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The list of skipped special files comes from the guest: bounded and
// made of local names of known kinds, or the result is refused.
func TestArchiveResultSkippedChecked(t *testing.T) {
	ok := agentproto.ArchiveResult{Entries: 1, SkippedCount: 300,
		Skipped: []agentproto.SkippedEntry{{Path: "run/fifo", Kind: agentproto.KindFifo}}}
	if err := checkArchiveResult(&ok, -1); err != nil {
		t.Fatal(err)
	}
	many := make([]agentproto.SkippedEntry, agentproto.MaxSkippedListed+1)
	for i := range many {
		many[i] = agentproto.SkippedEntry{Path: "p", Kind: agentproto.KindSocket}
	}
	for name, res := range map[string]agentproto.ArchiveResult{
		"too many listed":  {Skipped: many, SkippedCount: len(many)},
		"count below list": {Skipped: ok.Skipped, SkippedCount: 0},
		"absurd count":     {SkippedCount: 1 << 30},
		"outside name":     {Skipped: []agentproto.SkippedEntry{{Path: "../etc/x", Kind: agentproto.KindFifo}}, SkippedCount: 1},
		"absolute name":    {Skipped: []agentproto.SkippedEntry{{Path: "/dev/sda", Kind: agentproto.KindBlockDevice}}, SkippedCount: 1},
		"unknown kind":     {Skipped: []agentproto.SkippedEntry{{Path: "x", Kind: "\x1b[2J"}}, SkippedCount: 1},
	} {
		if err := checkArchiveResult(&res, -1); errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
			t.Errorf("%s: %v", name, err)
		}
	}
}
