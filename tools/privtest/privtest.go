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
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
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
type NS struct {
	// Name is the name under /run/netns, so `ip netns exec Name` works.
	Name   string
	Handle netns.NsHandle
}

// Path is the namespace's bind-mount path.
func (n NS) Path() string { return "/run/netns/" + n.Name }

// NewNS creates a fresh named network namespace with loopback up and
// deletes it when the test ends. prefix should be short: names are limited
// to 15 characters by some tools.
func NewNS(t testing.TB, prefix string) NS {
	t.Helper()
	name := prefix + "-" + randSuffix()
	var h netns.NsHandle
	err := onLockedThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		defer netns.Set(orig) //nolint:errcheck // best effort: the thread is locked and discarded anyway
		h, err = netns.NewNamed(name)
		if err != nil {
			return err
		}
		return loopbackUp()
	})
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	return NS{Name: name, Handle: h}
}

// Do runs f on an OS thread that is inside ns, and returns f's error. The
// thread is discarded afterwards so no other goroutine ever runs in ns by
// accident.
func (n NS) Do(f func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(n.Handle); err != nil {
			return fmt.Errorf("enter netns %s: %w", n.Name, err)
		}
		return f()
	})
}

// onLockedThread runs f on a fresh locked OS thread that is never reused
// (the goroutine exits still locked, so the runtime terminates the thread).
func onLockedThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
