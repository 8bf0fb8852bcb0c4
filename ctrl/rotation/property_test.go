package rotation_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/meshpb"
	"github.com/lumbrjx/vpblu/ctrl/rotation"
)

// chaos drives a controller with random events read from data and checks
// the safety properties after every one:
//
//   - the subject is told to RETIRE (zeroize its old key) only when every
//     peer it has then reported a stage that runs the new key on wg-mesh
//     (Rekey or SwitchBack) done;
//   - at most one node's status shows a rotation in progress, and no
//     output carries forward commands of two rotations.
type chaos struct {
	t    testing.TB
	e    *env
	data []byte
	// keyAcks[id][node]: node reported Rekey or SwitchBack of id done.
	keyAcks map[string]map[string]bool
	retired map[string]bool
	log     []string
}

func (c *chaos) byte() (byte, bool) {
	if len(c.data) == 0 {
		return 0, false
	}
	b := c.data[0]
	c.data = c.data[1:]
	return b, true
}

func (c *chaos) pick(names []string) string {
	b, _ := c.byte()
	return names[int(b)%len(names)]
}

var allNodes = []string{"a", "b", "c", "d"}

func (c *chaos) handle(ev rotation.Event) {
	if a, ok := ev.(rotation.Acked); ok && a.Err == "" && (a.Stage == rotation.StageRekey || a.Stage == rotation.StageSwitchBack) {
		if c.keyAcks[a.ID] == nil {
			c.keyAcks[a.ID] = map[string]bool{}
		}
		c.keyAcks[a.ID][a.Node] = true
	}
	c.log = append(c.log, fmt.Sprintf("%s %T%+v", c.e.now.Format(time.TimeOnly), ev, ev))
	out := c.e.handle(ev)
	c.check(out)
}

func (c *chaos) check(out rotation.Output) {
	ids := map[string]bool{}
	for _, cmd := range out.Commands {
		st := stageOf(cmd.Cmd)
		id := cmd.Cmd.GetId()
		if st == rotation.StagePrepare {
			delete(c.keyAcks, id) // a new attempt under the same id
			delete(c.retired, id)
		}
		if st != rotation.StageRetire && st != rotation.StageRollbackTeardown {
			ids[id] = true
		}
		subject, _, _ := rotation.ParseID(id)
		if st != rotation.StageRetire || cmd.Node != subject || c.retired[id] {
			continue
		}
		c.retired[id] = true
		for _, p := range c.e.world.Mesh.Peers(subject) {
			if !c.keyAcks[id][p.Node] {
				c.fail("%s told to retire its old key while peer %s has not acked the new key", subject, p.Node)
			}
		}
	}
	if len(ids) > 1 {
		c.fail("one output carries commands of rotations %v", ids)
	}
	busy := 0
	for _, n := range c.e.world.Nodes {
		if p := n.Status.RotationPhase; p != "" && p != v1alpha1.RotationIdle {
			busy++
		}
	}
	if busy > 1 {
		c.fail("%d nodes show a rotation in progress", busy)
	}
}

func (c *chaos) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf(format+"\nevents:\n%s", append(args, joinLines(c.log))...)
}

func joinLines(l []string) string {
	if len(l) > 60 {
		l = l[len(l)-60:]
	}
	s := ""
	for _, x := range l {
		s += "  " + x + "\n"
	}
	return s
}

func (c *chaos) stepOnce() bool {
	b, ok := c.byte()
	if !ok {
		return false
	}
	e := c.e
	id, st := e.m.Stage()
	subject, rotating := e.m.Rotating()
	switch b % 16 {
	case 0, 1:
		d, _ := c.byte()
		e.now = e.now.Add(time.Duration(d%40) * time.Second)
		c.handle(rotation.Tick{})
	case 2, 3:
		if rotating {
			c.handle(rotation.Acked{Node: c.pick(allNodes), ID: id, Stage: st})
		}
	case 4, 5:
		// The daemons do what they are told, as they mostly will.
		if rotating {
			for _, n := range e.all(subject) {
				if e.node(n).Connected {
					c.handle(rotation.Acked{Node: n, ID: id, Stage: st})
				}
			}
			var peers []string
			for _, p := range e.world.Mesh.Peers(subject) {
				peers = append(peers, p.Node)
				c.handle(rotation.Confirmed{Node: p.Node, ID: id, Stage: st, Peers: []string{subject}})
			}
			c.handle(rotation.Confirmed{Node: subject, ID: id, Stage: st, Peers: peers})
			e.now = e.now.Add(rotation.DefaultSettle)
			c.handle(rotation.Tick{})
		}
	case 6:
		if v, _ := c.byte(); rotating && v%4 == 0 {
			c.handle(rotation.Acked{Node: c.pick(allNodes), ID: id, Stage: st, Err: "chaos"})
		}
	case 7, 8:
		if rotating {
			n := c.pick(allNodes)
			peers := []string{subject}
			if n == subject {
				peers = nil
				for _, p := range e.world.Mesh.Peers(subject) {
					peers = append(peers, p.Node)
				}
			}
			c.handle(rotation.Confirmed{Node: n, ID: id, Stage: st, Peers: peers})
		}
	case 9:
		if rotating {
			g, _ := c.byte()
			gen := e.node(subject).Status.KeyGeneration + 1
			if g%4 == 0 {
				gen += int64(g % 3)
			}
			c.handle(rotation.KeyReported{Node: subject, Key: pendingKey(subject, gen)})
		}
	case 10:
		n := c.pick(allNodes)
		e.node(n).Connected = !e.node(n).Connected
		if e.node(n).Connected {
			c.handle(rotation.Connected{Node: n, Capable: true})
		} else {
			c.handle(rotation.Disconnected{Node: n})
		}
	case 11:
		c.log = append(c.log, "leader change")
		e.m = rotation.New(rotation.Options{})
		c.observe()
	case 12:
		// A node loses or regains its key: it leaves or joins the mesh.
		n := c.pick(allNodes)
		st := &e.node(n).Status
		if st.PublicKey == "" {
			st.PublicKey = key(n, st.KeyGeneration).String()
		} else if n != subject {
			st.PublicKey = ""
		}
		c.observe()
	case 13:
		n := c.pick(allNodes)
		v, _ := c.byte()
		e.node(n).RotateRequest = fmt.Sprint("r", v%8)
		c.observe()
	case 14:
		n := c.pick(allNodes)
		s := c.pick(allNodes)
		g, _ := c.byte()
		c.handle(rotation.Acked{Node: n, ID: rotation.ID(s, uint64(g%4)+1), Stage: rotation.StageDistribute})
	case 15:
		c.observe()
	}
	return true
}

func (c *chaos) observe() {
	w := *c.e.world
	w.Nodes = append([]rotation.Node(nil), c.e.world.Nodes...)
	c.handle(rotation.Observe{World: w})
}

// The daemons in the chaos run answer PREPARE with their pending key, as
// the executor does, so rotations get past Prepare often enough.
func (c *chaos) answerPrepare() {
	for _, n := range allNodes {
		cmds := c.e.sent[n]
		if len(cmds) == 0 {
			continue
		}
		last := cmds[len(cmds)-1]
		if stageOf(last) == rotation.StagePrepare && last.GetSubject() == n {
			c.e.sent[n] = nil
			c.handle(rotation.KeyReported{Node: n, Key: &meshpb.KeyReport{
				PublicKey: keyBytes(key(n, int64(last.GetNewKeyGeneration()))), Generation: last.GetNewKeyGeneration(),
				State: meshpb.KeyState_KEY_STATE_PENDING}})
		}
	}
}

func keyBytes(k [32]byte) []byte { return k[:] }

// runChaos returns how many rotations reached Retire and how many
// rolled back.
func runChaos(t testing.TB, data []byte) (retired, rolledBack int) {
	e := newEnv(t, allNodes...)
	c := &chaos{t: t, e: e, data: data, keyAcks: map[string]map[string]bool{}, retired: map[string]bool{}}
	e.node("a").RotateRequest = "start"
	c.observe()
	for c.stepOnce() {
		c.answerPrepare()
	}
	for _, l := range e.trace {
		if strings.HasPrefix(l, "finished ") && strings.Contains(l, " rolled_back ") {
			rolledBack++
		}
	}
	return len(c.retired), rolledBack
}

func TestRandomEventSequencesKeepRotationsSafe(t *testing.T) {
	retired, rolledBack := 0, 0
	for seed := range 250 {
		r := rand.New(rand.NewPCG(uint64(seed), 42))
		data := make([]byte, 500)
		for i := range data {
			data[i] = byte(r.IntN(256))
		}
		a, b := runChaos(t, data)
		retired, rolledBack = retired+a, rolledBack+b
	}
	// The sequences must exercise both ends, or they prove nothing.
	if retired < 20 || rolledBack < 20 {
		t.Fatalf("random sequences reached Retire %d times and rolled back %d times; want at least 20 each", retired, rolledBack)
	}
	t.Logf("random sequences: %d retirements, %d rollbacks", retired, rolledBack)
}

// The same check is a fuzz target: go test -fuzz FuzzRotationSafety ./ctrl/rotation
func FuzzRotationSafety(f *testing.F) {
	f.Add([]byte{2, 3, 4, 5, 7, 8, 0, 30, 2, 3, 4, 5, 7, 8, 11, 2, 3, 4})
	f.Add([]byte{9, 2, 2, 2, 7, 7, 7, 7, 0, 5, 2, 2, 2, 2, 0, 5, 2, 2, 2, 2, 7, 7, 7, 7, 12, 1, 0, 39})
	f.Fuzz(func(t *testing.T, data []byte) { runChaos(t, data) })
}
