package rotation

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Journal keeps the Overlay across daemon restarts. It holds public keys
// and state only, never a private key.
type Journal interface {
	// Load returns the saved overlay; the zero Overlay when none was saved.
	Load() (Overlay, error)
	// Save replaces the saved overlay; it is durable when Save returns.
	Save(Overlay) error
}

// JournalFile is the name FileJournal uses in the state directory.
const JournalFile = "rotation.json"

// ErrCorrupt: the journal cannot be read.
var ErrCorrupt = errors.New("corrupt rotation journal")

// FileJournal stores the overlay as JSON in one file (0600), replaced
// atomically (temporary file, fsync, rename).
type FileJournal struct {
	// Path is the file, e.g. /var/lib/vpblu/rotation.json.
	Path string
}

var _ Journal = FileJournal{}

// Load implements Journal.
func (j FileJournal) Load() (Overlay, error) {
	data, err := os.ReadFile(j.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Overlay{}, nil
	}
	if err != nil {
		return Overlay{}, fmt.Errorf("reading rotation journal: %w", err)
	}
	return DecodeJournal(data)
}

// Save implements Journal.
func (j FileJournal) Save(o Overlay) error {
	data, err := EncodeJournal(o)
	if err != nil {
		return err
	}
	dir := filepath.Dir(j.Path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(j.Path)+".*")
	if err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	if err := os.Rename(tmp, j.Path); err != nil {
		return fmt.Errorf("writing rotation journal: %w", err)
	}
	return nil
}

// Remove deletes the journal and any temporary file a Save left behind;
// a missing journal is not an error. The uninstaller calls it.
func (j FileJournal) Remove() error {
	var errs []error
	if err := os.Remove(j.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	strays, err := filepath.Glob(filepath.Join(filepath.Dir(j.Path), "."+filepath.Base(j.Path)+".*"))
	errs = append(errs, err)
	for _, f := range strays {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing rotation journal: %w", err)
	}
	return nil
}

type diskOverlay struct {
	Version        int              `json:"version"`
	ID             string           `json:"id,omitempty"`
	Subject        string           `json:"subject,omitempty"`
	Role           Role             `json:"role,omitempty"`
	NewGeneration  uint64           `json:"newGeneration,omitempty"`
	NewKey         string           `json:"newKey,omitempty"`
	OldKey         string           `json:"oldKey,omitempty"`
	Phase          string           `json:"phase,omitempty"`
	Step           string           `json:"step,omitempty"`
	Done           bool             `json:"done,omitempty"`
	Temp           *diskTemp        `json:"temp,omitempty"`
	Switched       []string         `json:"switched,omitempty"`
	MeshGeneration uint64           `json:"meshGeneration,omitempty"`
	MeshPeerKey    string           `json:"meshPeerKey,omitempty"`
	TempSince      time.Time        `json:"tempSince,omitzero"`
	MeshSince      time.Time        `json:"meshSince,omitzero"`
	Supersede      []diskSupersedes `json:"supersede,omitempty"`
}

type diskTemp struct {
	Interface     string         `json:"interface"`
	Port          int            `json:"port"`
	Mark          uint32         `json:"mark"`
	Table         int            `json:"table"`
	KeyGeneration uint64         `json:"keyGeneration,omitempty"`
	Peers         []diskTempPeer `json:"peers,omitempty"`
}

type diskTempPeer struct {
	Node      string `json:"node"`
	PublicKey string `json:"publicKey"`
	Endpoint  string `json:"endpoint,omitempty"`
}

type diskSupersedes struct {
	Node  string `json:"node"`
	Stale string `json:"stale"`
	Use   string `json:"use"`
}

func keyText(k wgtypes.Key) string {
	if k == (wgtypes.Key{}) {
		return ""
	}
	return k.String()
}

func parseKeyText(s string) (wgtypes.Key, error) {
	if s == "" {
		return wgtypes.Key{}, nil
	}
	return wgtypes.ParseKey(s)
}

// EncodeJournal renders an overlay as the journal stores it.
func EncodeJournal(o Overlay) ([]byte, error) {
	d := diskOverlay{
		Version: 1, ID: o.ID, Subject: o.Subject, Role: o.Role, NewGeneration: o.NewGeneration,
		NewKey: keyText(o.NewKey), OldKey: keyText(o.OldKey), Done: o.Done, Switched: o.Switched,
		MeshGeneration: o.MeshGeneration, MeshPeerKey: keyText(o.MeshPeerKey),
		TempSince: o.TempSince.UTC(), MeshSince: o.MeshSince.UTC(),
	}
	if o.Active() {
		d.Phase, d.Step = o.Stage.Phase.String(), o.Stage.Step.String()
	}
	if t := o.Temp; t != nil {
		d.Temp = &diskTemp{Interface: t.Interface, Port: t.Port, Mark: t.Mark, Table: t.Table, KeyGeneration: t.KeyGeneration}
		for _, p := range t.Peers {
			dp := diskTempPeer{Node: p.Node, PublicKey: keyText(p.PublicKey)}
			if p.Endpoint.IsValid() {
				dp.Endpoint = p.Endpoint.String()
			}
			d.Temp.Peers = append(d.Temp.Peers, dp)
		}
	}
	for _, s := range o.Supersede {
		d.Supersede = append(d.Supersede, diskSupersedes{Node: s.Node, Stale: keyText(s.Stale), Use: keyText(s.Use)})
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding rotation journal: %w", err)
	}
	return append(data, '\n'), nil
}

// DecodeJournal parses what EncodeJournal wrote.
func DecodeJournal(data []byte) (Overlay, error) {
	var d diskOverlay
	if err := json.Unmarshal(data, &d); err != nil {
		return Overlay{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if d.Version != 1 {
		return Overlay{}, fmt.Errorf("%w: version %d", ErrCorrupt, d.Version)
	}
	o := Overlay{
		ID: d.ID, Subject: d.Subject, Role: d.Role, NewGeneration: d.NewGeneration, Done: d.Done,
		Switched: d.Switched, MeshGeneration: d.MeshGeneration, TempSince: d.TempSince, MeshSince: d.MeshSince,
	}
	var errs []error
	key := func(s string) wgtypes.Key {
		k, err := parseKeyText(s)
		if err != nil {
			errs = append(errs, err)
		}
		return k
	}
	o.NewKey, o.OldKey, o.MeshPeerKey = key(d.NewKey), key(d.OldKey), key(d.MeshPeerKey)
	if o.Active() {
		ph, ok1 := meshpb.RotationPhase_value[d.Phase]
		st, ok2 := meshpb.RotationStep_value[d.Step]
		if !ok1 || !ok2 || (o.Role != Subject && o.Role != Peer) || o.Subject == "" {
			return Overlay{}, fmt.Errorf("%w: rotation %s: stage %s/%s role %q", ErrCorrupt, o.ID, d.Phase, d.Step, o.Role)
		}
		o.Stage = Stage{Phase: meshpb.RotationPhase(ph), Step: meshpb.RotationStep(st)}
	}
	if t := d.Temp; t != nil {
		o.Temp = &Temp{Interface: t.Interface, Port: t.Port, Mark: t.Mark, Table: t.Table, KeyGeneration: t.KeyGeneration}
		for _, p := range t.Peers {
			tp := TempPeer{Node: p.Node, PublicKey: key(p.PublicKey)}
			if p.Endpoint != "" {
				ep, err := netip.ParseAddrPort(p.Endpoint)
				if err != nil {
					errs = append(errs, err)
				}
				tp.Endpoint = ep
			}
			o.Temp.Peers = append(o.Temp.Peers, tp)
		}
	}
	for _, s := range d.Supersede {
		o.Supersede = append(o.Supersede, Supersession{Node: s.Node, Stale: key(s.Stale), Use: key(s.Use)})
	}
	if err := errors.Join(errs...); err != nil {
		return Overlay{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return o, nil
}
