package keys

import (
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Info describes a stored key without its private part.
type Info struct {
	State      State
	Generation uint64
	Created    time.Time
	Public     wgtypes.Key
}

// Inspect reads the keys stored in dir without changing anything (no key
// is created, no mode corrected, nothing zeroized on disk). Keys are
// listed active, pending, previous; a directory without an index has
// none.
func Inspect(dir string) ([]Info, error) {
	if dir == "" {
		dir = DefaultDir
	}
	s := &Store{dir: dir}
	m, err := s.readMeta()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, slot := range []struct {
		st State
		sm *slotMeta
	}{{Active, m.Active}, {Pending, m.Pending}, {Previous, m.Previous}} {
		if slot.sm == nil {
			continue
		}
		p, err := s.decodeKeyFile(slot.sm.Generation)
		if err != nil {
			return nil, err
		}
		out = append(out, Info{State: slot.st, Generation: slot.sm.Generation, Created: slot.sm.Created, Public: p.Public()})
		p.Zero()
	}
	return out, nil
}
