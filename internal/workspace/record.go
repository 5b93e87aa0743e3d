// Package workspace manages persistent workspaces: their on-disk state (one
// directory each), the per-workspace supervisor process that owns the VM, and
// the lifecycle (create, exec, stop, start, delete).
package workspace

import "github.com/pyrovm/pyro/internal/workspace/store"

// A workspace's files and record are package store's (shared with the
// CLI's fast path); these names keep this package's code and callers as
// they read.
type (
	Record       = store.Record
	SeedInfo     = store.SeedInfo
	Paths        = store.Paths
	SnapshotInfo = store.SnapshotInfo
	Skipped      = store.Skipped
	HistoryEntry = store.HistoryEntry
)

// States, TTL actions and the not-found code (see package store).
const (
	StateRunning = store.StateRunning
	StateStopped = store.StateStopped
	StatePaused  = store.StatePaused
	TTLDelete    = store.TTLDelete
	TTLPause     = store.TTLPause
	CodeNotFound = store.CodeNotFound
)
