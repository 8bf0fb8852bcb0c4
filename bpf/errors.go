package bpf

import "errors"

var (
	// ErrCapacity is returned by Apply when a state does not fit the map
	// capacities. The previous state stays in force.
	ErrCapacity = errors.New("data plane map capacity exceeded")
	// ErrInvalidState is returned by Apply for a state that cannot be
	// written as given (an invalid prefix, a duplicate, a zero mark). The
	// previous state stays in force.
	ErrInvalidState = errors.New("invalid data plane state")
	// ErrNotFound is returned when a remote CIDR or attachment asked for
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotBPFFS is returned by Open when the pin directory is not on a
	// bpf filesystem.
	ErrNotBPFFS = errors.New("not on a bpf filesystem")
)
