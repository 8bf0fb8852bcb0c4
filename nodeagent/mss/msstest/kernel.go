// Package msstest is an in-memory mss.Kernel for tests; it renders its
// table as `nft list` text for golden files.
package msstest

import (
	"slices"
	"sync"

	"github.com/lumbrjx/vpblu/nodeagent/mss"
)

// Kernel is a fake mss.Kernel. It is safe for concurrent use.
type Kernel struct {
	mu     sync.Mutex
	state  mss.State
	exists bool
	writes int
}

var _ mss.Kernel = (*Kernel)(nil)

// New returns a fake without the table.
func New() *Kernel { return &Kernel{} }

// Preset makes the table exist with s, as another process (or an older
// daemon) left it.
func (k *Kernel) Preset(s mss.State) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state, k.exists = clone(s), true
}

func clone(s mss.State) mss.State {
	s.Rules = slices.Clone(s.Rules)
	return s
}

// Read implements mss.Kernel.
func (k *Kernel) Read() (mss.State, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return clone(k.state), k.exists, nil
}

// Write implements mss.Kernel.
func (k *Kernel) Write(s mss.State) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes++
	k.state, k.exists = clone(s), true
	return nil
}

// Delete implements mss.Kernel.
func (k *Kernel) Delete() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.exists {
		k.writes++
	}
	k.state, k.exists = mss.State{}, false
	return nil
}

// Writes counts changes.
func (k *Kernel) Writes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.writes
}

// Render prints the table like `nft list table`.
func (k *Kernel) Render() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return mss.Render(k.state, k.exists)
}
