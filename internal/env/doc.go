// Package env manages pyro's environments: the catalog, the guest kernel
// built from Debian's linux-source package, root filesystem images built
// with mmdebstrap and mkfs.ext4 or converted from OCI images (image.go,
// with the oci and flatten subpackages), and the cache that holds them.
//
// # Cache layout
//
// Root = Options.CacheDir (DefaultCacheDir: PYRO_CACHE_DIR, else
// $XDG_CACHE_HOME/pyro, else ~/.cache/pyro):
//
//	kernels/<config hash>/vmlinux        uncompressed ELF, PVH entry
//	kernels/<config hash>/kernel.json    sha256, size, release, source version
//	bases/<slug>-<recipe hash>.tar       mmdebstrap output (tar format)
//	bases/<slug>-<recipe hash>.json      its sha256 and size, written after it
//	environments/<slug>/<version>/rootfs.ext4    read-only (0444), sparse
//	environments/<slug>/<version>/manifest.json  written last
//	images/<digest hex>/<version>/{rootfs.ext4,manifest.json}  OCI images
//	blobs/sha256/<hex>                   layer blobs, shared by digest
//	refs/<key>.json                      image reference -> manifest digest
//	builds/<key hex>/<version>/{rootfs.ext4,manifest.json}  custom environments (custom.go)
//	built/<name key>.json                custom environment name -> key and definition
//	locks/{kernel,base,env,image,ref,build,built}-*.lock, locks/blobs.lock  flocks; never deleted
//	tmp/<kind>-<random>/                 one per build, flocked via .lock
//	logs/*.log                           logs of failed builds (Prune empties)
//
// config hash = first 16 hex of sha256(embedded kernel/pyro.config +
// Debian version of linux-source-6.1). recipe hash = first 12 hex of
// sha256(recipe version + the mmdebstrap options of the catalog entry).
// slug = the name with ':' replaced by '-' ("debian:12-base" ->
// "debian-12-base").
//
// # Versions
//
// "<debian major>.<UTC build date YYYYMMDD>.<first 8 hex of the agent
// sha256>", e.g. "12.20250101.8a0eda26", with "-2", "-3"... appended when a
// second build happens the same day with the same agent (force pull,
// repair). A version directory is never rewritten (only its manifest, to
// follow a repaired kernel), so a rootfs path always names the same bytes:
// copy-on-write overlays backed by it stay valid. Old versions stay until
// Prune removes them.
//
// # Validity
//
// Everything is built under tmp/ and appears by one rename when complete,
// so a crash never leaves a half-built install that looks valid. Get and
// Ensure do a cheap check: manifest present and readable, rootfs and kernel
// present with the manifest's sizes, recipe hash current, and (when
// Options.AgentPath is set) the agent sha256 equal. Pull on an existing
// install (and Verify) re-hash kernel and image: a damaged image is rebuilt
// from the cached base tarball as a new version (the damaged one removed),
// a damaged kernel is rebuilt in place and the manifest updated.
//
// # Concurrency
//
// One flock per kernel, per base tarball and per environment serialises
// builds across processes: the second caller waits, then reuses the result.
// Progress events are delivered from the calling goroutine.
package env
