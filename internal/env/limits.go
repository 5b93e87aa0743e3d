package env

import (
	"os"
	"strconv"
)

// Defaults of what an image's layers may unpack to: well above real images
// (the largest common ones are a few GiB), well below a full disk.
const (
	DefaultMaxUnpackedBytes = 32 << 30
	DefaultMaxUnpackedFiles = 4 << 20
)

// unpackLimits are the bounds of one conversion: Options, else the
// environment, else the defaults.
func (s *Store) unpackLimits() (maxBytes, maxFiles int64) {
	maxBytes, maxFiles = s.opts.MaxUnpackedBytes, s.opts.MaxUnpackedFiles
	if maxBytes == 0 {
		maxBytes = DefaultMaxUnpackedBytes
		if n, err := strconv.ParseInt(os.Getenv("PYRO_MAX_UNPACKED_MIB"), 10, 64); err == nil && n > 0 {
			maxBytes = n << 20
		}
	}
	if maxFiles == 0 {
		maxFiles = DefaultMaxUnpackedFiles
		if n, err := strconv.ParseInt(os.Getenv("PYRO_MAX_UNPACKED_FILES"), 10, 64); err == nil && n > 0 {
			maxFiles = n
		}
	}
	return maxBytes, maxFiles
}
