package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Stable error codes of the archive ops (the same strings as internal/archive).
const (
	CodePathOutsideWorkspace = errdefs.CodePathOutsideWorkspace
	CodeNotFound             = errdefs.CodeNotFound
	CodeTooLarge             = errdefs.CodeTooLarge
	CodeBadArchive           = errdefs.CodeBadArchive
)

// DefaultArchiveMaxBytes is the content limit of an archive op that names
// none; the agent applies the same default.
const DefaultArchiveMaxBytes int64 = 2 << 30

// dataChunk bounds the payload of one FrameData frame.
const dataChunk = 64 << 10

// tarAllowance is the raw tar GetArchive accepts for maxBytes of content:
// 10% plus 1 MiB more, for headers and padding.
func tarAllowance(maxBytes int64) int64 {
	extra := maxBytes/10 + 1<<20
	if maxBytes > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return maxBytes + extra
}

// PutArchive extracts a tar stream into the guest directory dest (absolute,
// under agentproto.WorkspaceRoot; created when missing) and removes the
// entries remove names (relative to dest; files or symlinks that must
// exist), all or nothing. Existing files are replaced. The agent's answer is read while sending: when it refuses the
// archive early, PutArchive stops sending and returns the agent's error.
// tarStream is never read after PutArchive returns, so a Read that blocks
// delays the return. An error reading tarStream cancels the call (the agent
// stops; nothing of the archive is kept) and is returned as is.
func (c *Client) PutArchive(ctx context.Context, dest string, remove []string, tarStream io.Reader) (*agentproto.ArchiveResult, error) {
	if agentproto.RemoveSize(remove) > agentproto.MaxRemoveBytes {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeTooLarge,
			"%d paths to remove in one transfer take more than %d bytes: split the change", len(remove), agentproto.MaxRemoveBytes)
	}
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpPutArchive, Archive: &agentproto.ArchiveRequest{Path: dest, Remove: remove}}, 0)
	if err != nil {
		return nil, err
	}
	defer st.done()

	type reply struct {
		res *agentproto.ArchiveResult
		err error
	}
	replied := make(chan reply, 1)
	go func() {
		var res agentproto.ArchiveResult
		err := readResult(st, &res)
		replied <- reply{&res, err}
	}()
	sent := make(chan error, 1)
	go func() { sent <- sendArchive(st, tarStream) }()

	var r reply
	var sendErr error
	select {
	case r = <-replied:
		st.done() // fails a write blocked on a full window: stop sending
		sendErr = <-sent
	case sendErr = <-sent:
		var se *sourceError
		if errors.As(sendErr, &se) {
			// Closing before FrameDataEnd cancels the call in the agent.
			return nil, se.err
		}
		// A failed write means the stream broke; the reply says why.
		r = <-replied
	}
	if r.err != nil {
		return nil, r.err
	}
	if sendErr != nil {
		return nil, protocolErr("the agent answered before the end of the archive")
	}
	if err := checkArchiveResult(r.res, -1); err != nil {
		return nil, err
	}
	return r.res, nil
}

// sourceError is a failure to read the caller's tar stream.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }

// sendArchive copies r into FrameData frames, then sends FrameDataEnd.
func sendArchive(st io.Writer, r io.Reader) error {
	buf := make([]byte, dataChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := agentproto.WriteFrame(st, agentproto.FrameData, buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return agentproto.WriteFrame(st, agentproto.FrameDataEnd, nil)
		}
		if err != nil {
			return &sourceError{err}
		}
	}
}

// GetArchive writes a tar of the guest file or directory path (absolute,
// under agentproto.WorkspaceRoot) to w: a directory's entries are named
// relative to it, a file by its base name. maxBytes bounds the file content
// (0 means DefaultArchiveMaxBytes); the host also caps the raw tar it accepts
// at maxBytes plus 10% and 1 MiB, so a guest ignoring the limit fails with
// too_large. On error, w may have received part of the archive: discard it.
// An error from w is returned as is.
func (c *Client) GetArchive(ctx context.Context, path string, maxBytes int64, w io.Writer) (*agentproto.ArchiveResult, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultArchiveMaxBytes
	}
	allowance := tarAllowance(maxBytes)
	st, err := c.call(ctx, agentproto.Request{Op: agentproto.OpGetArchive,
		Archive: &agentproto.ArchiveRequest{Path: path, MaxBytes: maxBytes}}, 0)
	if err != nil {
		return nil, err
	}
	defer st.done()
	var got int64
	for {
		kind, payload, err := agentproto.ReadFrame(st)
		if err != nil {
			return nil, st.err(err)
		}
		switch kind {
		case agentproto.FrameData:
			got += int64(len(payload))
			if got > allowance {
				return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeTooLarge,
					"the guest sent more than %d bytes of tar for at most %d bytes of content: the guest agent is misbehaving; stop the VM",
					allowance, maxBytes)
			}
			if _, err := w.Write(payload); err != nil {
				return nil, err
			}
		case agentproto.FrameResult:
			var res agentproto.ArchiveResult
			if err := json.Unmarshal(payload, &res); err != nil {
				return nil, protocolErr("bad archive result: %v", err)
			}
			if err := checkArchiveResult(&res, maxBytes); err != nil {
				return nil, err
			}
			return &res, nil
		case agentproto.FrameError:
			return nil, wireErr(payload)
		default:
			return nil, protocolErr("unexpected frame kind %d", kind)
		}
	}
}

// checkArchiveResult refuses impossible numbers; maxBytes < 0 skips the
// content check.
func checkArchiveResult(res *agentproto.ArchiveResult, maxBytes int64) error {
	if res.Entries < 0 || res.Bytes < 0 || (maxBytes >= 0 && res.Bytes > maxBytes) {
		return protocolErr("archive result %d entries, %d bytes", res.Entries, res.Bytes)
	}
	if len(res.Skipped) > agentproto.MaxSkippedListed || res.SkippedCount < len(res.Skipped) || res.SkippedCount > maxArchiveEntries {
		return protocolErr("archive result lists %d of %d skipped files", len(res.Skipped), res.SkippedCount)
	}
	for _, s := range res.Skipped {
		if !skippedKinds[s.Kind] || len(s.Path) > 4096 || strings.ContainsRune(s.Path, 0) || !filepath.IsLocal(s.Path) {
			return protocolErr("archive result: bad skipped entry %.100q (%.20q)", s.Path, s.Kind)
		}
	}
	return nil
}

// maxArchiveEntries bounds the entries an archive may claim (the host's
// extraction refuses more anyway).
const maxArchiveEntries = 1 << 20

var skippedKinds = map[string]bool{agentproto.KindFifo: true, agentproto.KindSocket: true,
	agentproto.KindCharDevice: true, agentproto.KindBlockDevice: true}
