package supervisor

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
)

// CodeSecretsInstallFailed: the workspace's secrets could not be read or
// put into the guest, so the workspace did not start.
const CodeSecretsInstallFailed = errdefs.CodeSecretsInstallFailed

// secretsInstallTimeout bounds the one guest command that installs the
// secrets (a tar of at most 64 x 64 KiB into a tmpfs).
const secretsInstallTimeout = 30 * time.Second

// installScript makes dir owner-only and extracts the tar on stdin into it.
// The agent's archive operations only reach /workspace, so this is a plain
// command: GNU tar, -o = --no-same-owner when extracting (files stay root's
// either way: the agent runs as root).
func installScript(dir string) string {
	return "umask 077 && mkdir -p " + dir + " && chmod 700 " + dir + " && tar -x -o -f - -C " + dir
}

// loadSecrets reads the workspace's secrets file; no path or no file is no
// secrets. Its error never quotes the file's content.
func loadSecrets(path string) (secrets.Set, error) {
	if path == "" {
		return nil, nil
	}
	set, err := secrets.Load(path)
	if err == nil {
		return set, nil
	}
	why := "it is damaged"
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		why = pe.Error() // the path and the OS error: no content
	}
	return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeSecretsInstallFailed,
		"could not read the workspace's secrets file (%s): the workspace cannot start with its secrets; delete the workspace and create it again with its --secret options", why)
}

// maxInstallTar bounds one install command's tar: the request, with the
// tar base64-encoded in JSON, must fit in one agent frame
// (agentproto.MaxFramePayload, 1 MiB). Usual secrets fit in one command; a
// set near the limits (64 x 64 KiB) takes a few.
const maxInstallTar = 512 << 10

// secretsTars packs one regular file per secret, named by the secret's
// (validated) name, mode 0400, owned by root, into as few tars of at most
// maxInstallTar bytes as it takes (one for all but huge sets).
func secretsTars(set secrets.Set) ([][]byte, error) {
	var out [][]byte
	var buf bytes.Buffer
	var tw *tar.Writer
	finish := func() error {
		if tw == nil {
			return nil
		}
		if err := tw.Close(); err != nil {
			return err
		}
		out = append(out, bytes.Clone(buf.Bytes()))
		buf.Reset()
		tw = nil
		return nil
	}
	now := time.Now()
	for _, x := range set {
		// A header and the content padded to 512-byte blocks, and the
		// 1 KiB end of archive.
		size := 512 + (len(x.Value)+511)/512*512
		if tw != nil && buf.Len()+size+1024 > maxInstallTar {
			if err := finish(); err != nil {
				return nil, err
			}
		}
		if tw == nil {
			tw = tar.NewWriter(&buf)
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: x.Name, Mode: 0o400, Uid: 0, Gid: 0,
			Size: int64(len(x.Value)), ModTime: now, Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(x.Value)); err != nil {
			return nil, err
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// Execer runs a guest command (the agent client; a fake in tests).
type Execer interface {
	Exec(ctx context.Context, req agentproto.ExecRequest) (*agentclient.ExecResult, error)
}

// installRequest is the guest command that extracts one tar of secrets.
func installRequest(archive []byte) agentproto.ExecRequest {
	return agentproto.ExecRequest{
		Argv: []string{"/bin/sh", "-c", installScript(secrets.GuestDir)}, Stdin: archive,
		TimeoutMs: secretsInstallTimeout.Milliseconds(), MaxStdout: 4 << 10, MaxStderr: 4 << 10,
	}
}

// installSecrets puts one file per secret under secrets.GuestDir, with one
// guest command (a few for a set too big for one agent frame). Its error
// never carries a secret value.
func installSecrets(ctx context.Context, ex Execer, set secrets.Set) error {
	if len(set) == 0 {
		return nil
	}
	red := set.Redactor()
	fail := func(format string, args ...any) error {
		return errdefs.New(errdefs.ErrFailedPrecondition, CodeSecretsInstallFailed,
			"could not install the workspace's secrets under %s in the guest: %s; the environment's image needs /bin/sh, mkdir, chmod and GNU tar: rebuild it, or create the workspace without --secret",
			secrets.GuestDir, red.String(fmt.Sprintf(format, args...)))
	}
	archives, err := secretsTars(set)
	if err != nil {
		return fail("packing them failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, secretsInstallTimeout+agentclient.Grace)
	defer cancel()
	for _, archive := range archives {
		res, err := ex.Exec(ctx, installRequest(archive))
		if err != nil {
			return fail("%v", err)
		}
		if res.ExitCode == 0 && !res.TimedOut {
			continue
		}
		what := "the command"
		switch {
		case res.TimedOut:
			what += " timed out"
		case res.Signal != "":
			what += " was killed by signal " + res.Signal
		default:
			what += fmt.Sprintf(" exited with code %d", res.ExitCode)
		}
		if out := strings.TrimSpace(string(redactOutput(red, res.Stderr, res.StderrTruncated))); out != "" {
			what += ": " + strings.Join(strings.Fields(out), " ")
		}
		return fail("%s", what)
	}
	return nil
}
