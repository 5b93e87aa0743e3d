package pyro

import (
	"time"

	"github.com/pyrovm/pyro/internal/env"
)

// The environment types are the SDK's own (so go doc shows their fields);
// their JSON keys are those of the internal types they are mapped from, which
// the CLI's --json and the MCP output schemas print.

// EnvironmentInfo is one catalog entry, pulled image or built environment
// with its install state.
type EnvironmentInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Installed   bool     `json:"installed"`
	Version     string   `json:"version,omitempty"` // "" when not installed
	Packages    []string `json:"packages"`          // the catalog's package list
	RootfsSize  int64    `json:"rootfs_size,omitempty"`
	DiskUsage   int64    `json:"disk_usage,omitempty"` // bytes the sparse image really takes
	// Source is "debian" (catalog), "oci" (a pulled image), "artifact" (a
	// published environment) or "build" (a custom environment).
	Source string   `json:"source"`
	Digest string   `json:"digest,omitempty"` // oci: the image's manifest digest; build: the definition's key
	Base   string   `json:"base,omitempty"`   // build: the environment it was built from
	Steps  []string `json:"steps,omitempty"`  // build: its steps
}

// EnvironmentManifest describes an installed environment: kernel and rootfs
// digests and sizes, the agent baked in, the package list, and where it came
// from. Paths are absolute.
type EnvironmentManifest struct {
	SchemaVersion int               `json:"schema_version"`
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	Description   string            `json:"description"`
	CreatedAt     time.Time         `json:"created_at"`
	Kernel        EnvironmentKernel `json:"kernel"`
	Rootfs        EnvironmentRootfs `json:"rootfs"`
	AgentSHA256   string            `json:"agent_sha256"` // the guest agent baked into the image
	// RecipeHash identifies the package recipe (catalog entry and
	// mmdebstrap options) the image was built from; BaseSHA256 the exact
	// base tarball.
	RecipeHash string   `json:"recipe_hash"`
	BaseSHA256 string   `json:"base_sha256"`
	Packages   []string `json:"packages"` // "name=version", sorted
	// ImageRevision is pyro's own layer on top of the packages (agent path,
	// config files, tuning); an install of an older revision is rebuilt.
	ImageRevision int `json:"image_revision"`
	// Source is "debian" (the catalog, built with mmdebstrap), "oci" (an
	// image), or "build" (a custom environment); "" in manifests written
	// before sources existed means "debian".
	Source string `json:"source,omitempty"`
	// Reference is the normalized image reference an OCI environment was
	// pulled as, Digest its manifest digest (the config digest for a
	// docker-archive; a custom environment's definition key).
	Reference string            `json:"reference,omitempty"`
	Digest    string            `json:"digest,omitempty"`
	Image     *EnvironmentImage `json:"image,omitempty"` // oci: its layers and config
	// Published is set when the environment was installed from a pyro
	// environment artifact (env push on another host) instead of built here.
	Published *EnvironmentPublished `json:"published,omitempty"`
	// Build is the definition and base of a custom environment.
	Build *EnvironmentBuild `json:"build,omitempty"`
}

// EnvironmentKernel is the guest kernel an environment boots (uncompressed
// vmlinux, PVH entry).
type EnvironmentKernel struct {
	Path       string `json:"path"`
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	Release    string `json:"release"`     // uname -r in the guest
	ConfigHash string `json:"config_hash"` // of the kernel configuration it was built from
}

// EnvironmentRootfs is an environment's ext4 root filesystem image.
type EnvironmentRootfs struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`       // apparent size
	DiskUsage int64  `json:"disk_usage"` // allocated bytes (the file is sparse)
}

// EnvironmentImage is what an OCI environment keeps of its image.
type EnvironmentImage struct {
	Platform string       `json:"platform"` // always linux/amd64
	Layers   []ImageLayer `json:"layers"`
	Config   ImageConfig  `json:"config"`
	Skipped  []string     `json:"skipped,omitempty"` // layer entries not created (device nodes)
}

// ImageLayer is one layer of an image as stored: Digest names the stored
// bytes (the compressed blob from a registry or layout; the uncompressed tar
// from a docker-archive).
type ImageLayer struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"` // bytes stored
	MediaType string `json:"media_type,omitempty"`
}

// ImageConfig is what pyro keeps of an image's config: Env is the default
// environment of every command; the rest is recorded and shown (commands run
// as root, in / for runs and /workspace for workspaces).
type ImageConfig struct {
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}

// EnvironmentPublished says where an environment installed from an artifact
// came from.
type EnvironmentPublished struct {
	Reference string    `json:"reference"` // the artifact pulled
	Digest    string    `json:"digest"`    // its manifest digest
	Name      string    `json:"name"`      // the environment's name where it was built
	Source    string    `json:"source"`    // and its source there
	BuiltAt   time.Time `json:"built_at"`  // when it was built there
	Version   string    `json:"version"`   // and its version there
	PulledAt  time.Time `json:"pulled_at"` // when it was installed here
}

// EnvironmentBuild is what a custom environment's manifest keeps of its
// making: its definition and the base it was built over.
type EnvironmentBuild struct {
	From     string   `json:"from"`              // catalog name, image reference or built environment
	Steps    []string `json:"steps"`             // shell commands, run in order by /bin/sh -lc as root in /
	Network  bool     `json:"network,omitempty"` // egress for the steps
	DiskSize int64    `json:"disk_size,omitempty"`
	// StepTimeoutSeconds bounded each step; VCPUCount and MemMiB sized the
	// build's machine (none is part of the digest); 0 = the default.
	StepTimeoutSeconds int    `json:"step_timeout_seconds,omitempty"`
	VCPUCount          int    `json:"vcpu_count,omitempty"`
	MemMiB             int    `json:"mem_mib,omitempty"`
	EnvFile            string `json:"env_file,omitempty"` // the environment file the definition came from
	BaseVersion        string `json:"base_version"`
	BaseRootfsSHA256   string `json:"base_rootfs_sha256"`
	DurationMs         int64  `json:"duration_ms"`
}

// PushResult says what PushEnvironment published: the reference, the
// digest the registry holds it under, and the compressed sizes.
type PushResult struct {
	Environment  string `json:"environment"`
	Version      string `json:"version"`
	Reference    string `json:"reference"`
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifact_type"` // application/vnd.pyro.environment.v1+json
	KernelBytes  int64  `json:"kernel_bytes"`  // compressed, as stored in the registry
	RootfsBytes  int64  `json:"rootfs_bytes"`
}

// PruneResult says what PruneEnvironments removed.
type PruneResult struct {
	Removed    []PrunedItem `json:"removed"`
	BytesFreed int64        `json:"bytes_freed"`
}

// PrunedItem is one thing PruneEnvironments removed.
type PrunedItem struct {
	// Kind is "environment", "image", "build" (a custom environment's
	// image), "kernel", "base", "tmp", "log" or "run_snapshot".
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"` // disk usage freed
}

func toEnvironmentInfos(in []env.Info) []EnvironmentInfo {
	if in == nil {
		return nil
	}
	out := make([]EnvironmentInfo, len(in))
	for i, e := range in {
		out[i] = EnvironmentInfo(e)
	}
	return out
}

func toManifest(m *env.Manifest) *EnvironmentManifest {
	if m == nil {
		return nil
	}
	out := &EnvironmentManifest{
		SchemaVersion: m.SchemaVersion, Name: m.Name, Version: m.Version, Description: m.Description,
		CreatedAt: m.CreatedAt, Kernel: EnvironmentKernel(m.Kernel), Rootfs: EnvironmentRootfs(m.Rootfs),
		AgentSHA256: m.AgentSHA256, RecipeHash: m.RecipeHash, BaseSHA256: m.BaseSHA256, Packages: m.Packages,
		ImageRevision: m.ImageRevision, Source: m.Source, Reference: m.Reference, Digest: m.Digest,
	}
	if im := m.Image; im != nil {
		out.Image = &EnvironmentImage{Platform: im.Platform, Config: ImageConfig(im.Config), Skipped: im.Skipped}
		if im.Layers != nil {
			out.Image.Layers = make([]ImageLayer, len(im.Layers))
			for i, l := range im.Layers {
				out.Image.Layers[i] = ImageLayer{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType}
			}
		}
	}
	if p := m.Published; p != nil {
		pub := EnvironmentPublished(*p)
		out.Published = &pub
	}
	if b := m.Build; b != nil {
		out.Build = &EnvironmentBuild{From: b.From, Steps: b.Steps, Network: b.Network, DiskSize: b.DiskSize,
			StepTimeoutSeconds: b.StepTimeoutSeconds, VCPUCount: b.VCPUCount, MemMiB: b.MemMiB, EnvFile: b.EnvFile,
			BaseVersion: b.BaseVersion, BaseRootfsSHA256: b.BaseRootfsSHA256, DurationMs: b.DurationMs}
	}
	return out
}

func toPruneResult(r env.PruneResult) PruneResult {
	out := PruneResult{BytesFreed: r.BytesFreed}
	if r.Removed != nil {
		out.Removed = make([]PrunedItem, len(r.Removed))
		for i, it := range r.Removed {
			out.Removed[i] = PrunedItem(it)
		}
	}
	return out
}
