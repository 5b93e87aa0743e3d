package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ResumeSplit is where the medians of a resume and a fork of one go, read
// from the supervisors' own log lines ("vm up", "saved for forks").
type ResumeSplit struct {
	ResumeCallMs int64 `json:"resume_call_ms"` // the resume call, until the workspace runs
	FirstExecMs  int64 `json:"first_exec_ms"`  // the first exec after it (a cold TCG translation cache)
	VMMStartMs   int64 `json:"vmm_start_ms"`   // the VMM started, its agent channel connected
	AgentMs      int64 `json:"agent_ms"`       // state loaded, guest awake, session handshake, first hello
	SyncMs       int64 `json:"sync_ms"`        // second hello: clock, entropy, network
	ForkSaveMs   int64 `json:"fork_save_ms"`   // a running source's save for a fork (the guest is stopped that long)
	ForkBootMs   int64 `json:"fork_boot_ms"`   // the fork's restore in its supervisor (vm up boot_ms)
}

// lastLogInts returns the integer fields of the last line of a workspace's
// supervisor.log whose message is msg, or nil.
func lastLogInts(stateDir, id, msg string) map[string]int64 {
	f, err := os.Open(filepath.Join(stateDir, "workspaces", id, "supervisor.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `msg="`+msg+`"`) {
			last = sc.Text()
		}
	}
	if last == "" {
		return nil
	}
	out := map[string]int64{}
	for _, kv := range strings.Fields(last) {
		k, v, ok := strings.Cut(kv, "=")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil {
			out[k] = n
		}
	}
	return out
}
