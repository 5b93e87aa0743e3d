package env

import "context"

// CachedKernel returns the kernel for the embedded config if it is already
// built, without building anything (doctor uses it). When the kernel source
// version cannot be read, it returns the newest cached kernel, as Kernel does.
func (s *Store) CachedKernel() (KernelInfo, bool) {
	if s.init() != nil {
		return KernelInfo{}, false
	}
	if hash, _, err := s.currentKernelHash(context.Background()); err == nil {
		return s.cachedKernel(hash)
	}
	return s.newestCachedKernel()
}
