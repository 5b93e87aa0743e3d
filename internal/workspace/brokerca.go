package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/renameio/v2"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
)

// writeBrokerCA makes the workspace's broker CA when it has brokered
// secrets: constrained to the hosts they are bound to, kept owner-only for
// the workspace's life (the guest trusts it across stop and start).
func writeBrokerCA(path, id string, brokered secrets.Set) error {
	if len(brokered) == 0 {
		return nil
	}
	var hosts []string
	for _, s := range brokered {
		hosts = append(hosts, s.BrokerHosts...)
	}
	slices.Sort(hosts)
	pem, err := network.NewBrokerCA(id, slices.Compact(hosts))
	if err != nil {
		return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "make the workspace's secret broker CA")
	}
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o600))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(pem); err != nil {
		return err
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// brokerCAPath is the CA for the supervisor, or "" when there is none.
func brokerCAPath(p Paths) string {
	if _, err := os.Stat(p.BrokerCA()); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return p.BrokerCA()
}
