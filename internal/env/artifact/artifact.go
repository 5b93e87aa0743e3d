// Package artifact is the OCI form of a pyro environment, what "pyro env
// push" publishes and "pyro env pull" installs as is:
//
//	OCI image manifest (application/vnd.oci.image.manifest.v1+json)
//	  artifactType  application/vnd.pyro.environment.v1+json
//	  config        application/vnd.pyro.environment.config.v1+json
//	                pyro's environment manifest (manifest.json of the cache,
//	                file paths reduced to "vmlinux" and "rootfs.ext4")
//	  layers[0]     application/vnd.pyro.kernel.vmlinux.v1+zstd
//	                the guest kernel (uncompressed ELF vmlinux), zstd
//	  layers[1]     application/vnd.pyro.rootfs.ext4.v1+zstd
//	                the root filesystem image (ext4), zstd
//
// Both layers are checked twice on the way in: the compressed bytes
// against the layer digest, the uncompressed ones against the sha256 and
// size the config records. The root filesystem is written sparse (zero
// blocks become holes), as the local builder leaves it.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of a pyro environment artifact.
const (
	ArtifactType    = "application/vnd.pyro.environment.v1+json"
	ConfigMediaType = "application/vnd.pyro.environment.config.v1+json"
	KernelMediaType = "application/vnd.pyro.kernel.vmlinux.v1+zstd"
	RootfsMediaType = "application/vnd.pyro.rootfs.ext4.v1+zstd"
)

// maxConfigSize bounds the config blob read from a registry (a manifest
// with a few thousand packages is under 200 KiB).
const maxConfigSize = 4 << 20

const titleAnnotation = "org.opencontainers.image.title"

// Blob is one compressed layer on disk, ready to push.
type Blob struct {
	Path      string
	MediaType string
	Title     string  // file name it unpacks to
	Digest    v1.Hash // of the compressed bytes
	Size      int64   // compressed bytes
	DiffID    v1.Hash // sha256 of the uncompressed bytes
}

// New assembles the artifact from pyro's manifest (config) and the two
// compressed layers.
func New(config []byte, kernel, rootfs Blob, annotations map[string]string) (v1.Image, error) {
	sum := sha256.Sum256(config)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config: v1.Descriptor{
			MediaType: ConfigMediaType,
			Size:      int64(len(config)),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		},
		Annotations: annotations,
	}
	blobs := map[v1.Hash]Blob{}
	for _, b := range []Blob{kernel, rootfs} {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.MediaType(b.MediaType), Size: b.Size, Digest: b.Digest,
			Annotations: map[string]string{titleAnnotation: b.Title}})
		blobs[b.Digest] = b
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&image{config: config, manifest: raw, blobs: blobs})
}

// image is the artifact as go-containerregistry's remote.Write wants it.
type image struct {
	config   []byte
	manifest []byte
	blobs    map[v1.Hash]Blob
}

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if b, ok := i.blobs[h]; ok {
		return fileLayer{b}, nil
	}
	if sum := sha256.Sum256(i.config); h.Hex == hex.EncodeToString(sum[:]) {
		return configLayer{i.config, h}, nil
	}
	return nil, os.ErrNotExist
}

// fileLayer serves a Blob from its file.
type fileLayer struct{ b Blob }

func (l fileLayer) Digest() (v1.Hash, error)            { return l.b.Digest, nil }
func (l fileLayer) DiffID() (v1.Hash, error)            { return l.b.DiffID, nil }
func (l fileLayer) Size() (int64, error)                { return l.b.Size, nil }
func (l fileLayer) MediaType() (types.MediaType, error) { return types.MediaType(l.b.MediaType), nil }
func (l fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.b.Path) }

type configLayer struct {
	b []byte
	h v1.Hash
}

func (l configLayer) Digest() (v1.Hash, error)            { return l.h, nil }
func (l configLayer) DiffID() (v1.Hash, error)            { return l.h, nil }
func (l configLayer) Size() (int64, error)                { return int64(len(l.b)), nil }
func (l configLayer) MediaType() (types.MediaType, error) { return ConfigMediaType, nil }
func (l configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.b)), nil
}
