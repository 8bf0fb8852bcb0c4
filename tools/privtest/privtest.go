// Package privtest is the one way vpblu tests get privilege: they name why
// they need it, run in network namespaces of their own, and leave nothing
// behind.
//
// A test that cannot get privilege is skipped with the reason on a normal
// developer machine, and fails when CI=true: in CI (root) nothing
// privileged is ever skipped.
package privtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/lumbrjx/vpblu/tools/netns"
)

// Require stops the test unless the process is root. why says what the
// test needs privilege for; it is printed when the test cannot run.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := fmt.Sprintf("PRIVILEGED TEST NOT RUN: needs root to %s", why)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI=true: privileged tests must run)")
	}
	t.Skip(msg)
}

// NS is a named network namespace created for one test.
type NS = netns.NS

// NewNS creates a fresh named network namespace with loopback up and
// deletes it when the test ends. Keep prefix short: the name gets a
// 7-character suffix.
func NewNS(t testing.TB, prefix string) NS {
	t.Helper()
	ns, err := netns.Create(prefix + "-" + randSuffix())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return ns
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
