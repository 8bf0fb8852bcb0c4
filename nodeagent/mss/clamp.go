package mss

import (
	"fmt"
	"slices"
	"sync"
)

// Kernel is the nftables state Clamper works on.
type Kernel interface {
	// Read returns the package's table; ok is false when it does not
	// exist.
	Read() (s State, ok bool, err error)
	// Write replaces the table with s in one atomic transaction, creating
	// it when missing.
	Write(s State) error
	// Delete removes the table; a missing table is not an error.
	Delete() error
}

// Clamper applies Configs to a Kernel. Sets are serialized.
type Clamper struct {
	k  Kernel
	mu sync.Mutex
}

// New returns a Clamper working on k.
func New(k Kernel) *Clamper { return &Clamper{k: k} }

// Set makes the clamp match c, writing only when the table differs. An
// invalid c is refused before anything changes.
func (c *Clamper) Set(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok, err := c.k.Read()
	if err != nil {
		return fmt.Errorf("reading table %s: %w", TableName, err)
	}
	if cfg.MTU == 0 {
		if !ok {
			return nil
		}
		if err := c.k.Delete(); err != nil {
			return fmt.Errorf("deleting table %s: %w", TableName, err)
		}
		return nil
	}
	want := desired(cfg)
	if ok && equal(cur, want) {
		return nil
	}
	if err := c.k.Write(want); err != nil {
		return fmt.Errorf("writing table %s: %w", TableName, err)
	}
	return nil
}

func equal(a, b State) bool {
	return a.Hook == b.Hook && a.Priority == b.Priority && slices.Equal(a.Rules, b.Rules)
}
