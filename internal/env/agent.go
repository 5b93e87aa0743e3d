package env

import (
	"context"
	"debug/elf"
	"os"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// The guest agent's sha256 is part of an image's identity. It is hashed
// once per (path, size, mtime) and remembered by the Store.

type agentCacheKey struct {
	path  string
	size  int64
	mtime time.Time
}

// agent returns the identity of Options.AgentPath; ok is false when no
// agent was configured.
func (s *Store) agent(ctx context.Context) (ag agentInfo, ok bool, err error) {
	p := s.opts.AgentPath
	if p == "" {
		return agentInfo{}, false, nil
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return agentInfo{}, true, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"guest agent binary %s is not a readable file", p)
	}
	key := agentCacheKey{p, st.Size(), st.ModTime()}
	s.mu.Lock()
	if s.agentKey == key && s.agentSum != "" {
		sum := s.agentSum
		s.mu.Unlock()
		return agentInfo{path: p, sha256: sum}, true, nil
	}
	s.mu.Unlock()
	if err := checkAgentELF(p); err != nil {
		return agentInfo{}, true, err
	}
	sum, _, err := sha256File(ctx, p, nil)
	if err != nil {
		if ctx.Err() != nil {
			return agentInfo{}, true, ctxError(ctx, "hashing the guest agent")
		}
		return agentInfo{}, true, errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"reading guest agent binary %s", p)
	}
	s.mu.Lock()
	s.agentKey, s.agentSum = key, sum
	s.mu.Unlock()
	return agentInfo{path: p, sha256: sum}, true, nil
}

// checkAgentELF insists on a static x86-64 executable: the agent runs as the
// guest's PID 1 and must not depend on the image's libraries.
func checkAgentELF(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return errdefs.Wrap(err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"guest agent %s is not an ELF executable", p)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
			"guest agent %s is not an x86-64 executable (machine %v, type %v)", p, f.Machine, f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument,
				"guest agent %s is dynamically linked: build it statically (CGO_ENABLED=0)", p)
		}
	}
	return nil
}
