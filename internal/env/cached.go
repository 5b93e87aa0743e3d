package env

// CachedKernel returns the kernel for the embedded config if it is already
// built, without building anything (doctor uses it).
func (s *Store) CachedKernel() (KernelInfo, bool) {
	if s.init() != nil {
		return KernelInfo{}, false
	}
	return s.newestCachedKernel()
}
