package rotation

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/lumbrjx/vpblu/core/desired"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/nodeagent/keys"
	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

// Keys is the node's key store; *keys.Store implements it.
type Keys interface {
	KeyReader
	// Stage generates (or returns the already staged) pending key of
	// generation gen.
	Stage(gen uint64) (keys.Key, error)
	// Activate makes pending generation gen active, keeping the old one as
	// previous; activating the active generation is a no-op.
	Activate(gen uint64) (keys.Key, error)
	// Rollback zeroizes the pending key (and restores the previous one if
	// an activation happened).
	Rollback() error
	// Retire zeroizes the previous key.
	Retire() error
}

var _ Keys = (*keys.Store)(nil)

// ErrNoDesiredState is what Host.Apply returns (wrapped or not) when the
// agent has no desired state yet: it kept the overlay but changed
// nothing.
var ErrNoDesiredState = errors.New("no desired state yet")

// Host is the node agent as the executor sees it.
type Host interface {
	// Apply makes the node run its desired state with o laid over it
	// (Compose), applying only what differs, in Composed's order, and
	// keeps o for every later reconcile (SyncState, Delta) until the next
	// Apply. Before the agent has a desired state it only keeps o and
	// returns ErrNoDesiredState. It must not delete the temporary
	// interface when o has none: the executor does that after this call
	// took its path and marks away.
	Apply(o Overlay) error
}

// Tunnels reads WireGuard interfaces and deletes wg-rot; *wg.Manager
// implements it.
type Tunnels interface {
	// Delete removes an interface; a missing one is not an error.
	Delete(name string) error
	// Status reads an interface; a missing one is an error wrapping
	// wg.ErrNotFound.
	Status(name string) (wg.Status, error)
}

var _ Tunnels = (*wg.Manager)(nil)

// Deps are what an Executor drives.
type Deps struct {
	Keys    Keys
	Host    Host
	Tunnels Tunnels
	Journal Journal
}

// Options configure an Executor.
type Options struct {
	// Node is this node's name; required.
	Node string
	// Interface, Mark and Table of the temporary path (see PlanOptions).
	Interface string
	Mark      uint32
	Table     int
	// MeshInterface is the interface whose handshakes confirm a re-key;
	// wg.MeshInterface when empty.
	MeshInterface string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Result is what a command or a restart produced.
type Result struct {
	// Steps are the steps that ran, in order (the failing one last).
	Steps []Step
	// Report is the RotationReport to send (nil: none).
	Report *meshpb.RotationReport
	// Keys are KeyReports to send, in order.
	Keys []*meshpb.KeyReport
}

// Executor carries out rotation commands on one node. It is safe for
// concurrent use; commands are serialized.
type Executor struct {
	opts PlanOptions
	mesh string
	now  func() time.Time
	d    Deps

	mu sync.Mutex
	o  Overlay
}

// New returns an executor. It changes nothing; call Start.
func New(opts Options, d Deps) (*Executor, error) {
	if opts.Node == "" {
		return nil, fmt.Errorf("%w: no node name", ErrInvalid)
	}
	if d.Keys == nil || d.Host == nil || d.Tunnels == nil || d.Journal == nil {
		return nil, fmt.Errorf("%w: every dependency is required", ErrInvalid)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	mesh := opts.MeshInterface
	if mesh == "" {
		mesh = wg.MeshInterface
	}
	iface, mark, table := defaultTemp(opts.Interface, opts.Mark, opts.Table)
	if iface == mesh {
		return nil, fmt.Errorf("%w: temporary interface %s is the mesh interface", ErrInvalid, iface)
	}
	return &Executor{opts: PlanOptions{Node: opts.Node, Interface: iface, Mark: mark, Table: table}, mesh: mesh, now: now, d: d}, nil
}

// Start loads the journal and hands its overlay to the host, so the
// agent's first reconcile runs the rotation as it was. A terminal command
// (RETIRE, or a rollback's TEARDOWN) that was interrupted is completed
// (the controller had decided it) if the agent already has a desired
// state; otherwise Resume completes it after the first reconcile. With no
// temporary interface journaled, a leftover wg-rot is deleted. Call it
// once, before the stream connects.
func (e *Executor) Start() (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, err := e.d.Journal.Load()
	if err != nil {
		return Result{}, err
	}
	e.o = o
	if err := e.d.Host.Apply(o.Clone()); err != nil && !errors.Is(err, ErrNoDesiredState) {
		return Result{}, fmt.Errorf("applying the journaled rotation: %w", err)
	}
	// Without a journaled temporary interface, one that exists is left
	// over (a crash between journaling its removal and deleting it, or
	// after a rotation ended): nothing is marked for it, since the step
	// before its removal switched every peer back, journaled and applied.
	if o.Temp == nil {
		if err := e.d.Tunnels.Delete(e.opts.Interface); err != nil {
			return Result{}, fmt.Errorf("deleting a leftover %s: %w", e.opts.Interface, err)
		}
	}
	if !o.Active() {
		return Result{}, nil
	}
	if !o.Stage.terminal() || o.Done {
		rep, err := e.reportLocked()
		return Result{Report: rep}, err
	}
	res, err := e.resumeLocked()
	if errors.Is(err, ErrNoDesiredState) {
		rep, rerr := e.reportLocked()
		return Result{Steps: res.Steps, Report: rep}, rerr
	}
	return res, err
}

// Resume completes a terminal command that a restart interrupted; it does
// nothing otherwise. The agent calls it after its first successful
// reconcile.
func (e *Executor) Resume() (Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.resumeLocked()
}

func (e *Executor) resumeLocked() (Result, error) {
	o := e.o
	if !o.Active() || !o.Stage.terminal() || o.Done {
		return Result{}, nil
	}
	cmd := Command{ID: o.ID, Subject: o.Subject, Stage: o.Stage, NewGeneration: o.NewGeneration, NewKey: o.NewKey, OldKey: o.OldKey}
	return e.runLocked(cmd)
}

// Handle carries out a rotation command and returns what to report. On
// error the node stays at the last step that succeeded (the failing step
// is undone); sending the command again continues from there.
func (e *Executor) Handle(c *meshpb.RotationCommand) (Result, error) {
	cmd, err := ParseCommand(c)
	if err != nil {
		return Result{Report: &meshpb.RotationReport{
			Id: c.GetId(), Subject: c.GetSubject(), Phase: c.GetPhase(), Step: c.GetStep(),
			NewKeyGeneration: c.GetNewKeyGeneration(), Error: err.Error(),
		}}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runLocked(cmd)
}

func (e *Executor) runLocked(cmd Command) (Result, error) {
	var res Result
	fail := func(err error) (Result, error) {
		res.Report = &meshpb.RotationReport{
			Id: cmd.ID, Subject: cmd.Subject, Phase: cmd.Stage.Phase, Step: cmd.Stage.Step,
			NewKeyGeneration: cmd.NewGeneration, Error: err.Error(),
		}
		return res, err
	}
	slots, err := e.slots()
	if err != nil {
		return fail(err)
	}
	steps, err := Plan(Current{Overlay: e.o, Keys: slots}, cmd, e.now(), e.opts)
	if err != nil {
		return fail(err)
	}
	for _, s := range steps {
		res.Steps = append(res.Steps, s)
		kr, err := e.step(s)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", s.Kind, err))
		}
		if kr != nil {
			res.Keys = append(res.Keys, kr)
		}
	}
	if e.o.Active() {
		res.Report, err = e.reportLocked()
		return res, err
	}
	res.Report = &meshpb.RotationReport{
		Id: cmd.ID, Subject: cmd.Subject, Phase: cmd.Stage.Phase, Step: cmd.Stage.Step,
		NewKeyGeneration: cmd.NewGeneration, Done: true,
	}
	return res, nil
}

// step runs one step: key work that must precede the overlay change, the
// journal, the host, then key work and deletion that must follow it.
func (e *Executor) step(s Step) (*meshpb.KeyReport, error) {
	before := e.o
	var staged *keys.Key
	switch s.Kind {
	case StepStageKey:
		k, err := e.d.Keys.Stage(s.Generation)
		if err != nil {
			return nil, err
		}
		staged = &k
	case StepActivateKey:
		if _, err := e.d.Keys.Activate(s.Generation); err != nil {
			return nil, err
		}
	}
	if err := e.d.Journal.Save(s.Overlay); err != nil {
		return nil, err
	}
	e.o = s.Overlay.Clone()
	if !composeEqual(before, s.Overlay) {
		if err := e.d.Host.Apply(s.Overlay.Clone()); err != nil {
			return nil, errors.Join(err, e.undo(before))
		}
	}
	switch s.Kind {
	case StepDeleteTemp:
		if err := e.d.Tunnels.Delete(before.Temp.Interface); err != nil {
			return nil, err
		}
	case StepRetireKey:
		if err := e.d.Keys.Retire(); err != nil {
			return nil, err
		}
	case StepRollbackKey:
		if err := e.d.Keys.Rollback(); err != nil {
			return nil, err
		}
	}
	switch s.Report {
	case meshpb.KeyState_KEY_STATE_PENDING:
		return keyReport(*staged, s.Report), nil
	case meshpb.KeyState_KEY_STATE_ACTIVE:
		k, err := e.d.Keys.Active()
		if err != nil {
			return nil, err
		}
		return keyReport(k, s.Report), nil
	}
	return nil, nil
}

// undo goes back to the overlay before a step whose host change failed.
func (e *Executor) undo(before Overlay) error {
	errs := []error{e.d.Journal.Save(before), e.d.Host.Apply(before.Clone())}
	if before.Temp == nil && e.o.Temp != nil {
		errs = append(errs, e.d.Tunnels.Delete(e.o.Temp.Interface))
	}
	e.o = before
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("undoing: %w", err)
	}
	return nil
}

func keyReport(k keys.Key, st meshpb.KeyState) *meshpb.KeyReport {
	pub := k.Public()
	return &meshpb.KeyReport{PublicKey: pub[:], Generation: k.Generation, State: st, CreatedUnixNano: k.Created.UnixNano()}
}

func (e *Executor) slots() (KeySlots, error) {
	a, err := e.d.Keys.Active()
	if err != nil {
		return KeySlots{}, fmt.Errorf("reading the active key: %w", err)
	}
	s := KeySlots{Active: a.Generation}
	if p, ok := e.d.Keys.Pending(); ok {
		s.Pending = p.Generation
	}
	if p, ok := e.d.Keys.Previous(); ok {
		s.Previous = p.Generation
	}
	return s, nil
}

// Overlay returns the overlay in force.
func (e *Executor) Overlay() Overlay {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Clone()
}

// Report returns the report of the rotation in progress on this node,
// with its current confirmations; nil when there is none. The agent sends
// it after connecting and, while Awaiting, whenever it changes.
func (e *Executor) Report() (*meshpb.RotationReport, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reportLocked()
}

func (e *Executor) reportLocked() (*meshpb.RotationReport, error) {
	o := e.o
	if !o.Active() {
		return nil, nil
	}
	r := &meshpb.RotationReport{
		Id: o.ID, Subject: o.Subject, Phase: o.Stage.Phase, Step: o.Stage.Step,
		NewKeyGeneration: o.NewGeneration, Done: o.Done,
	}
	if o.Temp == nil || watchOf(o.Stage) == watchNone {
		return r, nil
	}
	read := func(name string) (*wg.Status, error) {
		st, err := e.d.Tunnels.Status(name)
		if errors.Is(err, wg.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &st, nil
	}
	temp, err := read(o.Temp.Interface)
	if err != nil {
		return r, err
	}
	mesh, err := read(e.mesh)
	if err != nil {
		return r, err
	}
	r.Confirmed = Confirmed(o, temp, mesh)
	return r, nil
}

// Awaiting reports whether the controller waits for handshakes this node
// has not confirmed yet: the agent then polls Report (every few hundred
// milliseconds) and sends it when the confirmed set grows.
func (e *Executor) Awaiting() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.o
	if !o.Active() || !o.Done || o.Temp == nil || !awaits(o.Stage) {
		return false
	}
	r, err := e.reportLocked()
	return err != nil || len(r.GetConfirmed()) < len(o.Temp.Peers)
}

// Prune drops supersessions the desired state no longer needs (it stopped
// naming the superseded key for the node), journals the result and hands
// it to the host. Call it after a successful reconcile, outside the
// agent's own lock (it calls Host.Apply).
func (e *Executor) Prune(s desired.NodeState) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := slices.DeleteFunc(slices.Clone(e.o.Supersede), func(sp Supersession) bool {
		p, ok := s.Peers.Get(sp.Node)
		return !ok || wgtypes.Key(p.PublicKey) != sp.Stale
	})
	if len(keep) == len(e.o.Supersede) {
		return nil
	}
	o := e.o.Clone()
	o.Supersede = keep
	if err := e.d.Journal.Save(o); err != nil {
		return err
	}
	e.o = o
	return e.d.Host.Apply(o.Clone())
}
