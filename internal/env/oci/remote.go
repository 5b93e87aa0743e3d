package oci

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// The registry plumbing Resolve uses, for other sources that talk to
// registries (pyro's own environment artifacts): the same credentials, the
// same plain-HTTP rule, the same typed errors.

// Remote is the go-containerregistry reference of a registry reference,
// marked insecure (plain HTTP allowed) only when opts names its registry.
func (r Ref) Remote(opts Options) (name.Reference, error) {
	if r.Kind != KindRegistry {
		return nil, invalid(r.Name, "is not a registry reference")
	}
	if !opts.insecure(r.ref.Context().RegistryStr()) {
		return r.ref, nil
	}
	return name.ParseReference(r.ref.String(), name.Insecure)
}

// RemoteOptions are the go-containerregistry options of every registry
// call: ctx, credentials from the keychain, the plain-HTTP guard.
func RemoteOptions(ctx context.Context, opts Options, extra ...remote.Option) []remote.Option {
	return append(remoteOptions(ctx, opts), extra...)
}

// CheckPush asks the registry whether ref may be pushed (credentials,
// reachability, plain HTTP), before any long work.
func CheckPush(ctx context.Context, ref Ref, opts Options) error {
	r, err := ref.Remote(opts)
	if err != nil {
		return err
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	t := ctxTransport{ctx: ctx, base: &plainHTTPGuard{base: remote.DefaultTransport, opts: opts}}
	if err := remote.CheckPushPermission(r, kc, t); err != nil {
		return PushError(ctx, ref, err)
	}
	return nil
}

// ctxTransport puts ctx on every request: CheckPushPermission takes none.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// PullError maps an error of a registry read to a typed one.
func PullError(ctx context.Context, ref Ref, err error) error { return mapErr(ctx, ref, err) }

// PushError maps an error of a registry write to a typed one.
func PushError(ctx context.Context, ref Ref, err error) error {
	var e *errdefs.Error
	if errors.As(err, &e) {
		return err
	}
	if ctx.Err() != nil {
		return errdefs.Wrap(ctx.Err(), errdefs.ErrCanceled, errdefs.CodeCanceled, "pushing %s canceled", ref.Name)
	}
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return errdefs.Wrap(err, errdefs.ErrFailedPrecondition, errdefs.CodeRegistryAuth,
			"registry %s refused to let you push %s: log in with \"docker login %s\" (pyro reads the Docker config: $DOCKER_CONFIG/config.json or ~/.docker/config.json)",
			ref.Registry, ref.Name, ref.Registry)
	}
	m := mapErr(ctx, ref, err)
	var ph *plainHTTPError
	if errors.As(err, &ph) || strings.Contains(err.Error(), "plain HTTP to ") {
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeImagePush,
			"registry %s does not speak HTTPS; if it really is a plain-HTTP registry you trust, allow it with --insecure-registry %s or %s=%s",
			ref.Registry, ref.Registry, InsecureEnv, ref.Registry)
	}
	if errdefs.CodeOf(m) == errdefs.CodeImagePull {
		return errdefs.Wrap(err, errdefs.ClassByName(errdefs.ClassName(m)), errdefs.CodeImagePush,
			"pushing %s failed (the registry holds no new tag; pushing again re-sends only what is missing)", ref.Name)
	}
	return m
}
