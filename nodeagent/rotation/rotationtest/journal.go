package rotationtest

import (
	"sync"

	"github.com/lumbrjx/vpblu/nodeagent/rotation"
)

// Journal is an in-memory rotation.Journal that keeps what it saves in
// the encoded form, as a file would.
type Journal struct {
	mu    sync.Mutex
	data  []byte
	saves int
}

var _ rotation.Journal = (*Journal)(nil)

// Load implements rotation.Journal.
func (j *Journal) Load() (rotation.Overlay, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.data == nil {
		return rotation.Overlay{}, nil
	}
	return rotation.DecodeJournal(j.data)
}

// Save implements rotation.Journal.
func (j *Journal) Save(o rotation.Overlay) error {
	data, err := rotation.EncodeJournal(o)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data, j.saves = data, j.saves+1
	return nil
}

// Remove forgets what was saved, as removing the file would.
func (j *Journal) Remove() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.data = nil
	return nil
}

// Saves counts saves.
func (j *Journal) Saves() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.saves
}
