package pyro

// mapSlice converts each element of in with f; nil stays nil, so JSON keeps
// printing null where it did (and omitempty fields stay omitted).
func mapSlice[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
