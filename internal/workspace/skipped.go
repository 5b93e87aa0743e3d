package workspace

import (
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor"
)

// skippedOf reads the guest's (already checked) list; names are redacted.
func skippedOf(res *supervisor.ArchiveResult, red *secrets.Redactor) Skipped {
	if res == nil || res.SkippedCount == 0 {
		return Skipped{}
	}
	out := Skipped{Count: res.SkippedCount}
	for _, s := range res.Skipped {
		out.Files = append(out.Files, archive.Skipped{Path: red.String(s.Path), Reason: skipReason(s.Kind)})
	}
	return out
}

func skipReason(kind string) string {
	name := map[string]string{agentproto.KindFifo: "fifo", agentproto.KindSocket: "socket",
		agentproto.KindCharDevice: "character device", agentproto.KindBlockDevice: "block device"}[kind]
	return name + ": special files are not copied"
}
