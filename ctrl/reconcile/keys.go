package reconcile

import "sync"

// Keys holds the public keys daemons reported on their streams. They win
// over the VpbluNode status, which is written later and rate limited. It is
// safe for concurrent use.
type Keys struct {
	mu sync.Mutex
	m  map[string]ReportedKey
}

// Set records node's key and reports whether it changed.
func (k *Keys) Set(node string, key ReportedKey) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]ReportedKey{}
	}
	if old, ok := k.m[node]; ok && old == key {
		return false
	}
	k.m[node] = key
	return true
}

// Get returns node's reported key.
func (k *Keys) Get(node string) (ReportedKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.m[node]
	return key, ok
}

// Forget drops node's key (the Node is gone).
func (k *Keys) Forget(node string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, node)
}
