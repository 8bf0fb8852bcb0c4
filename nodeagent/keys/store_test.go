package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// seqKeys generates deterministic, distinct private keys.
func seqKeys() func() (wgtypes.Key, error) {
	var n byte
	return func() (wgtypes.Key, error) {
		n++
		var k wgtypes.Key
		for i := range k {
			k[i] = n ^ byte(i*7)
		}
		return wgtypes.NewKey(k[:])
	}
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Generate: seqKeys(), Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenCreatesFirstKeyWithRestrictedModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openStore(t, dir)
	k, err := s.Active()
	if err != nil {
		t.Fatal(err)
	}
	if k.Generation != 1 || k.State != Active || k.Private.IsZero() {
		t.Fatalf("first key: generation %d state %s zero %v", k.Generation, k.State, k.Private.IsZero())
	}
	modes := map[string]os.FileMode{}
	for _, p := range []string{dir, filepath.Join(dir, "key-1.key"), filepath.Join(dir, "keys.json")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		modes[filepath.Base(p)] = st.Mode().Perm()
	}
	want := map[string]os.FileMode{"state": 0o700, "key-1.key": 0o600, "keys.json": 0o600}
	if d := cmp.Diff(want, modes); d != "" {
		t.Errorf("modes (-want +got):\n%s", d)
	}
}

func TestOpenRestrictsWideModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openStore(t, dir)
	_ = s.Close()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "key-1.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir)
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "key-1.key"): 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, st.Mode().Perm(), want)
		}
	}
}

func TestKeyIsReusedAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	s1 := openStore(t, dir)
	k1, _ := s1.Active()
	pub1 := k1.Public()
	_ = s1.Close()
	if !k1.Private.IsZero() {
		t.Error("Close left the key in memory")
	}
	// A real generator: a reopened store must not call it.
	s2, err := Open(Options{Dir: dir, Generate: func() (wgtypes.Key, error) {
		t.Error("reopened store generated a key")
		return wgtypes.GeneratePrivateKey()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	k2, _ := s2.Active()
	if k2.Public() != pub1 || k2.Generation != 1 {
		t.Errorf("after restart: key %s gen %d, want %s gen 1", k2.Public(), k2.Generation, pub1)
	}
}

func TestPrivateKeyNeverPrints(t *testing.T) {
	s := openStore(t, t.TempDir())
	k, _ := s.Active()
	raw := k.Private.Key()
	secrets := []string{
		base64.StdEncoding.EncodeToString(raw[:]),
		hex.EncodeToString(raw[:]),
		fmt.Sprint(raw[:]),
		fmt.Sprintf("%x", raw[:4]),
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k, "private", k.Private)
	js, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", k.Private), "%s": fmt.Sprintf("%s", k.Private),
		"%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", k), "%x": fmt.Sprintf("%x", k.Private),
		"%X": fmt.Sprintf("%X", k.Private), "%q": fmt.Sprintf("%q", k.Private), "%d": fmt.Sprintf("%d", k.Private),
		"String": k.Private.String(), "slog": logged.String(), "json": string(js),
	}
	for name, out := range outputs {
		for _, sec := range secrets {
			if bytes.Contains([]byte(out), []byte(sec)) {
				t.Errorf("%s prints the private key: %s", name, out)
			}
		}
		if !bytes.Contains([]byte(out), []byte(redacted)) {
			t.Errorf("%s does not say the key is redacted: %s", name, out)
		}
	}
}

// slotGens summarizes a store as "active=N pending=N previous=N".
func slotGens(s *Store) string {
	out := ""
	for _, st := range []State{Active, Pending, Previous} {
		k, ok := s.get(st)
		if ok {
			out += fmt.Sprintf("%s=%d ", st, k.Generation)
		}
	}
	return out
}

func TestRotationSteps(t *testing.T) {
	type step struct {
		op      string
		gen     uint64
		wantErr error
		want    string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"stage activate retire leaves only the new key", []step{
			{op: "stage", want: "active=1 pending=2 "},
			{op: "activate", gen: 2, want: "active=2 previous=1 "},
			{op: "retire", want: "active=2 "},
		}},
		{"rollback after prepare drops the pending key", []step{
			{op: "stage", want: "active=1 pending=2 "},
			{op: "rollback", want: "active=1 "},
		}},
		{"rollback after activate restores the old key", []step{
			{op: "stage", want: "active=1 pending=2 "},
			{op: "activate", gen: 2, want: "active=2 previous=1 "},
			{op: "rollback", want: "active=1 "},
		}},
		{"repeated commands are no-ops", []step{
			{op: "stage", gen: 5, want: "active=1 pending=5 "},
			{op: "stage", gen: 5, want: "active=1 pending=5 "},
			{op: "activate", gen: 5, want: "active=5 previous=1 "},
			{op: "activate", gen: 5, want: "active=5 previous=1 "},
			{op: "retire", want: "active=5 "},
			{op: "retire", want: "active=5 "},
			{op: "rollback", want: "active=5 "},
		}},
		{"generations only grow after a rollback", []step{
			{op: "stage", want: "active=1 pending=2 "},
			{op: "rollback", want: "active=1 "},
			{op: "stage", want: "active=1 pending=3 "},
		}},
		{"restaging another generation replaces the pending key", []step{
			{op: "stage", gen: 2, want: "active=1 pending=2 "},
			{op: "stage", gen: 3, want: "active=1 pending=3 "},
		}},
		{"activate without that pending key is refused", []step{
			{op: "activate", gen: 2, wantErr: ErrNoPending, want: "active=1 "},
			{op: "stage", gen: 2, want: "active=1 pending=2 "},
			{op: "activate", gen: 3, wantErr: ErrNoPending, want: "active=1 pending=2 "},
		}},
		{"stage not newer than active is refused", []step{
			{op: "stage", gen: 1, wantErr: ErrGeneration, want: "active=1 "},
		}},
		{"second activation before retire is refused", []step{
			{op: "stage", want: "active=1 pending=2 "},
			{op: "activate", gen: 2, want: "active=2 previous=1 "},
			{op: "stage", want: "active=2 pending=3 previous=1 "},
			{op: "activate", gen: 3, wantErr: ErrRotationInProgress, want: "active=2 pending=3 previous=1 "},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			for i, st := range tc.steps {
				var err error
				switch st.op {
				case "stage":
					_, err = s.Stage(st.gen)
				case "activate":
					_, err = s.Activate(st.gen)
				case "retire":
					err = s.Retire()
				case "rollback":
					err = s.Rollback()
				}
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d %s: error %v, want %v", i, st.op, err, st.wantErr)
				}
				if got := slotGens(s); got != st.want {
					t.Fatalf("step %d %s: %q, want %q", i, st.op, got, st.want)
				}
				// What is on disk is what is in memory.
				re, err := Open(Options{Dir: dir, Generate: seqKeys()})
				if err != nil {
					t.Fatalf("step %d: reopen: %v", i, err)
				}
				if got := slotGens(re); got != st.want {
					t.Fatalf("step %d %s: reopened store %q, want %q", i, st.op, got, st.want)
				}
				_ = re.Close()
				if n := countKeyFiles(t, dir); n != len(s.slots) {
					t.Fatalf("step %d: %d key files for %d keys", i, n, len(s.slots))
				}
			}
		})
	}
}

func countKeyFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "key-*.key"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestRetireZeroizesKeyOnDiskAndInMemory keeps a second hard link to the
// retired key file: unlinking alone would leave the bytes readable through
// it, so all-zero content proves the file was overwritten in place.
func TestRetireZeroizesKeyOnDiskAndInMemory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	s := openStore(t, dir)
	old, _ := s.Active()
	oldRaw := old.Private.Key()
	witness := filepath.Join(root, "witness")
	if err := os.Link(filepath.Join(dir, "key-1.key"), witness); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stage(0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Activate(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Retire(); err != nil {
		t.Fatal(err)
	}
	if !old.Private.IsZero() {
		t.Error("retired key still in memory")
	}
	data, err := os.ReadFile(witness)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || !bytes.Equal(data, make([]byte, len(data))) {
		t.Errorf("retired key file not overwritten with zeros: %q", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "key-1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("retired key file still linked: %v", err)
	}
	needles := [][]byte{oldRaw[:], []byte(base64.StdEncoding.EncodeToString(oldRaw[:]))}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s still holds the retired key", e.Name())
			}
		}
	}
}

func TestOpenZeroizesUnreferencedKeyFiles(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	_ = s.Close()
	stray := filepath.Join(dir, "key-9.key")
	if err := os.WriteFile(stray, []byte("c3RyYXkgc2VjcmV0IGtleSBtYXRlcmlhbCAxMjM0NTY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir)
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stray key file survived Open: %v", err)
	}
}

func TestCorruptStateIsRefusedAndKept(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		write string
	}{
		{"unreadable index", "keys.json", "{not json"},
		{"unknown index version", "keys.json", `{"version": 7}`},
		{"truncated key", "key-1.key", "c2hvcnQ=\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			_ = s.Close()
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.write), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Options{Dir: dir})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.write {
				t.Errorf("Open changed the corrupt file")
			}
		})
	}
}

func TestRemoveZeroizesEverythingAndTheDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	s := openStore(t, dir)
	if _, err := s.Stage(0); err != nil {
		t.Fatal(err)
	}
	witness := filepath.Join(root, "witness")
	if err := os.Link(filepath.Join(dir, "key-2.key"), witness); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory survived: %v", err)
	}
	data, _ := os.ReadFile(witness)
	if len(data) == 0 || !bytes.Equal(data, make([]byte, len(data))) {
		t.Errorf("pending key not zeroized: %q", data)
	}
	if err := Remove(dir); err != nil {
		t.Errorf("removing again: %v", err)
	}
}

func TestInspectListsKeysWithoutChangingAnything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if infos, err := Inspect(dir); err != nil || len(infos) != 0 {
		t.Fatalf("Inspect of a missing directory: %v %v", infos, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Inspect created the directory")
	}
	s := openStore(t, dir)
	active, _ := s.Active()
	pending, _ := s.Stage(0)
	infos, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Info{
		{State: Active, Generation: 1, Created: active.Created, Public: active.Public()},
		{State: Pending, Generation: 2, Created: pending.Created, Public: pending.Public()},
	}
	if d := cmp.Diff(want, infos); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
