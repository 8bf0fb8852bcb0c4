package keys

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DefaultDir is the state directory of vpblu-agent.
const DefaultDir = "/var/lib/vpblu"

const (
	metaFile  = "keys.json"
	keyPrefix = "key-"
	keySuffix = ".key"
	dirMode   = 0o700
	fileMode  = 0o600
)

var (
	// ErrNoPending: no staged key with the asked generation exists.
	ErrNoPending = errors.New("no pending key")
	// ErrRotationInProgress: a previous key is still kept; retire or roll
	// back before another activation.
	ErrRotationInProgress = errors.New("previous key not retired")
	// ErrGeneration: a generation that is not newer than the active key's.
	ErrGeneration = errors.New("key generation not newer than the active key")
	// ErrCorrupt: the state directory holds something the store cannot read.
	ErrCorrupt = errors.New("corrupt key state")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("key store closed")
)

// State says which slot a key fills.
type State string

const (
	// Active is the key the node's main interface runs with.
	Active State = "active"
	// Pending is a key staged by a rotation's Prepare phase.
	Pending State = "pending"
	// Previous is the replaced key, kept until Retire so a rollback can
	// restore it.
	Previous State = "previous"
)

// Key is one stored key.
type Key struct {
	Private Private
	// Generation counts the node's keys: 1 for the first.
	Generation uint64
	Created    time.Time
	State      State
}

// Public derives the public key.
func (k Key) Public() wgtypes.Key { return k.Private.Public() }

// Options configure a Store.
type Options struct {
	// Dir is the state directory; DefaultDir when empty. It is created
	// 0700, and its mode is corrected to 0700 when it is wider.
	Dir string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Generate makes a new private key; wgtypes.GeneratePrivateKey when
	// nil. Tests inject deterministic keys.
	Generate func() (wgtypes.Key, error)
}

// Store keeps the node's keys on disk. It is safe for concurrent use.
// Keys it returns share memory with the store: once a key is retired or
// the store is closed, every copy reads as zero.
type Store struct {
	dir      string
	now      func() time.Time
	generate func() (wgtypes.Key, error)

	mu     sync.Mutex
	closed bool
	last   uint64
	slots  map[State]*Key
}

// meta is the on-disk index of the keys; writing it is the commit point
// of every change, so a crash never leaves two answers to "which key is
// active".
type meta struct {
	Version        int       `json:"version"`
	LastGeneration uint64    `json:"lastGeneration"`
	Active         *slotMeta `json:"active,omitempty"`
	Pending        *slotMeta `json:"pending,omitempty"`
	Previous       *slotMeta `json:"previous,omitempty"`
}

type slotMeta struct {
	Generation uint64    `json:"generation"`
	Created    time.Time `json:"created"`
}

// Open opens (or initializes) the store in opts.Dir. A store without an
// active key gets one, generation 1. Key files that the index does not
// reference (left by a crash) are zeroized.
func Open(opts Options) (*Store, error) {
	s := &Store{
		dir:      opts.Dir,
		now:      opts.Now,
		generate: opts.Generate,
		slots:    map[State]*Key{},
	}
	if s.dir == "" {
		s.dir = DefaultDir
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.generate == nil {
		s.generate = wgtypes.GeneratePrivateKey
	}
	if err := ensureDir(s.dir); err != nil {
		return nil, err
	}
	m, err := s.readMeta()
	if err != nil {
		return nil, err
	}
	s.last = m.LastGeneration
	for state, sm := range map[State]*slotMeta{Active: m.Active, Pending: m.Pending, Previous: m.Previous} {
		if sm == nil {
			continue
		}
		p, err := s.readKey(sm.Generation)
		if err != nil {
			s.zeroAll()
			return nil, err
		}
		s.slots[state] = &Key{Private: p, Generation: sm.Generation, Created: sm.Created, State: state}
	}
	if err := s.shredUnreferenced(); err != nil {
		s.zeroAll()
		return nil, err
	}
	if s.slots[Active] == nil {
		if _, err := s.create(Active, 0); err != nil {
			s.zeroAll()
			return nil, err
		}
	}
	return s, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Active returns the active key.
func (s *Store) Active() (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Key{}, ErrClosed
	}
	return *s.slots[Active], nil
}

// Pending returns the staged key, if any.
func (s *Store) Pending() (Key, bool) { return s.get(Pending) }

// Previous returns the replaced key kept until Retire, if any.
func (s *Store) Previous() (Key, bool) { return s.get(Previous) }

func (s *Store) get(st State) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.slots[st]
	if s.closed || k == nil {
		return Key{}, false
	}
	return *k, true
}

// Stage generates and stores a pending key with generation gen (0: one
// more than the highest generation the store has seen). Staging the
// generation that is already pending returns that key unchanged; a pending
// key of another generation is zeroized and replaced.
func (s *Store) Stage(gen uint64) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Key{}, ErrClosed
	}
	active := s.slots[Active]
	if gen == 0 {
		gen = max(s.last, active.Generation) + 1
	}
	if gen <= active.Generation {
		return Key{}, fmt.Errorf("staging generation %d, active is %d: %w", gen, active.Generation, ErrGeneration)
	}
	if p := s.slots[Pending]; p != nil {
		if p.Generation == gen {
			return *p, nil
		}
		if err := s.drop(Pending); err != nil {
			return Key{}, err
		}
	}
	return s.create(Pending, gen)
}

// Activate makes the pending key of generation gen active and keeps the
// active one as previous. Activating the generation that is already active
// is a no-op, so a repeated command is harmless.
func (s *Store) Activate(gen uint64) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Key{}, ErrClosed
	}
	if a := s.slots[Active]; a.Generation == gen {
		return *a, nil
	}
	p := s.slots[Pending]
	if p == nil || p.Generation != gen {
		return Key{}, fmt.Errorf("activating generation %d: %w", gen, ErrNoPending)
	}
	if s.slots[Previous] != nil {
		return Key{}, fmt.Errorf("activating generation %d: %w", gen, ErrRotationInProgress)
	}
	old := s.slots[Active]
	next := map[State]*Key{Active: p, Previous: old}
	if err := s.commit(next); err != nil {
		return Key{}, err
	}
	return *p, nil
}

// Rollback undoes a rotation that has not been retired: the pending key is
// zeroized and, when an activation happened, the previous key becomes
// active again and the newer one is zeroized. Without a rotation it does
// nothing.
func (s *Store) Rollback() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.slots[Pending] != nil {
		if err := s.drop(Pending); err != nil {
			return err
		}
	}
	prev := s.slots[Previous]
	if prev == nil {
		return nil
	}
	newer := s.slots[Active]
	if err := s.commit(map[State]*Key{Active: prev}); err != nil {
		return err
	}
	return s.zeroize(newer)
}

// Retire zeroizes the previous key in memory and on disk. Without one it
// does nothing.
func (s *Store) Retire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.slots[Previous] == nil {
		return nil
	}
	return s.drop(Previous)
}

// Close zeroizes every key the store holds in memory; the files stay.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.zeroAll()
	return nil
}

func (s *Store) zeroAll() {
	for _, k := range s.slots {
		k.Private.Zero()
	}
}

// create generates a key for slot st (gen 0: next generation), writes its
// file, then the index.
func (s *Store) create(st State, gen uint64) (Key, error) {
	if gen == 0 {
		gen = s.last + 1
	}
	raw, err := s.generate()
	if err != nil {
		return Key{}, fmt.Errorf("generating key: %w", err)
	}
	p := newPrivate(raw)
	clear(raw[:])
	k := &Key{Private: p, Generation: gen, Created: s.now().UTC().Truncate(time.Second), State: st}
	if err := s.writeKey(k); err != nil {
		p.Zero()
		return Key{}, err
	}
	next := s.copySlots()
	next[st] = k
	if err := s.commit(next); err != nil {
		_ = shred(s.keyPath(gen))
		p.Zero()
		return Key{}, err
	}
	return *k, nil
}

// drop removes slot st from the index, then zeroizes its key.
func (s *Store) drop(st State) error {
	k := s.slots[st]
	next := s.copySlots()
	delete(next, st)
	if err := s.commit(next); err != nil {
		return err
	}
	return s.zeroize(k)
}

func (s *Store) zeroize(k *Key) error {
	k.Private.Zero()
	if err := shred(s.keyPath(k.Generation)); err != nil {
		return fmt.Errorf("zeroizing key generation %d: %w", k.Generation, err)
	}
	return nil
}

func (s *Store) copySlots() map[State]*Key {
	next := make(map[State]*Key, len(s.slots))
	for st, k := range s.slots {
		next[st] = k
	}
	return next
}

// commit writes the index for next and, once it is on disk, adopts it.
func (s *Store) commit(next map[State]*Key) error {
	m := meta{Version: 1, LastGeneration: s.last}
	slot := func(st State) *slotMeta {
		k := next[st]
		if k == nil {
			return nil
		}
		m.LastGeneration = max(m.LastGeneration, k.Generation)
		return &slotMeta{Generation: k.Generation, Created: k.Created}
	}
	m.Active, m.Pending, m.Previous = slot(Active), slot(Pending), slot(Previous)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding key index: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, metaFile), append(data, '\n')); err != nil {
		return fmt.Errorf("writing key index: %w", err)
	}
	for st, k := range next {
		k.State = st
	}
	s.slots = next
	s.last = m.LastGeneration
	return nil
}

func (s *Store) keyPath(gen uint64) string {
	return filepath.Join(s.dir, keyPrefix+strconv.FormatUint(gen, 10)+keySuffix)
}

// writeKey stores the key in base64 (the format of `wg genkey`).
func (s *Store) writeKey(k *Key) error {
	raw := k.Private.Key()
	buf := make([]byte, base64.StdEncoding.EncodedLen(len(raw))+1)
	base64.StdEncoding.Encode(buf, raw[:])
	buf[len(buf)-1] = '\n'
	clear(raw[:])
	defer clear(buf)
	if err := writeFileAtomic(s.keyPath(k.Generation), buf); err != nil {
		return fmt.Errorf("writing key generation %d: %w", k.Generation, err)
	}
	return nil
}

func (s *Store) readKey(gen uint64) (Private, error) {
	path := s.keyPath(gen)
	st, err := os.Stat(path)
	if err != nil {
		return Private{}, fmt.Errorf("key generation %d: %w: %w", gen, ErrCorrupt, err)
	}
	if st.Mode().Perm() != fileMode {
		if err := os.Chmod(path, fileMode); err != nil {
			return Private{}, fmt.Errorf("restricting %s to 0600: %w", path, err)
		}
	}
	return s.decodeKeyFile(gen)
}

// decodeKeyFile reads and decodes a key file.
func (s *Store) decodeKeyFile(gen uint64) (Private, error) {
	path := s.keyPath(gen)
	data, err := os.ReadFile(path)
	if err != nil {
		return Private{}, fmt.Errorf("reading key generation %d: %w", gen, err)
	}
	defer clear(data)
	b := new([wgtypes.KeyLen]byte)
	enc := data
	if n := len(enc); n > 0 && enc[n-1] == '\n' {
		enc = enc[:n-1]
	}
	if base64.StdEncoding.DecodedLen(len(enc)) < wgtypes.KeyLen {
		return Private{}, fmt.Errorf("key generation %d: %w: wrong length", gen, ErrCorrupt)
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	defer clear(dec)
	n, err := base64.StdEncoding.Decode(dec, enc)
	if err != nil || n != wgtypes.KeyLen {
		return Private{}, fmt.Errorf("key generation %d: %w: not a base64 key", gen, ErrCorrupt)
	}
	copy(b[:], dec[:n])
	p := Private{b: b}
	if p.IsZero() {
		return Private{}, fmt.Errorf("key generation %d: %w: zero key", gen, ErrCorrupt)
	}
	return p, nil
}

func (s *Store) readMeta() (meta, error) {
	var m meta
	data, err := os.ReadFile(filepath.Join(s.dir, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("reading key index: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("key index: %w: %w", ErrCorrupt, err)
	}
	if m.Version != 1 {
		return m, fmt.Errorf("key index version %d: %w", m.Version, ErrCorrupt)
	}
	return m, nil
}

// shredUnreferenced zeroizes key files and temporary files the index does
// not name.
func (s *Store) shredUnreferenced() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", s.dir, err)
	}
	keep := map[string]bool{}
	for _, k := range s.slots {
		keep[filepath.Base(s.keyPath(k.Generation))] = true
	}
	for _, e := range entries {
		name := e.Name()
		stray := strings.HasPrefix(name, "."+keyPrefix) || strings.HasPrefix(name, "."+metaFile)
		if strings.HasPrefix(name, keyPrefix) && strings.HasSuffix(name, keySuffix) && !keep[name] {
			stray = true
		}
		if stray && e.Type().IsRegular() {
			if err := shred(filepath.Join(s.dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove zeroizes every key and index file in dir and removes dir (if it
// is then empty); the uninstaller calls it. A missing dir is not an error.
// Open stores of dir must be closed first.
func Remove(dir string) error {
	if dir == "" {
		dir = DefaultDir
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		ours := name == metaFile || strings.HasPrefix(name, "."+metaFile) || strings.HasPrefix(name, "."+keyPrefix) ||
			(strings.HasPrefix(name, keyPrefix) && strings.HasSuffix(name, keySuffix))
		if ours && e.Type().IsRegular() {
			if err := shred(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("state directory %s: not a directory", dir)
	}
	if st.Mode().Perm() != dirMode {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("restricting %s to 0700: %w", dir, err)
		}
	}
	return nil
}
