package wg

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// homeNS is the network namespace a userspace interface was created in.
// wireguard-go opens UDP sockets and reads the TUN's MTU from whatever
// goroutine asks (a UAPI request, a link event); when the process has
// threads in other namespaces, those calls are moved onto a thread inside
// this one.
type homeNS struct {
	h  netns.NsHandle
	id string // "net:[inode]" of h
	// own is true when every thread of the process is in h (a daemon that
	// never switches namespaces): then nothing needs moving, and the
	// plain wireguard-go bind keeps its route listener.
	own bool
}

func captureNS() (homeNS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := netns.Get()
	if err != nil {
		return homeNS{}, fmt.Errorf("reading thread network namespace: %w", err)
	}
	id, err := threadNSID()
	if err != nil {
		h.Close()
		return homeNS{}, err
	}
	return homeNS{h: h, id: id, own: allThreadsIn(id)}, nil
}

func threadNSID() (string, error) {
	id, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("reading thread network namespace: %w", err)
	}
	return id, nil
}

func allThreadsIn(id string) bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		l, err := os.Readlink(filepath.Join("/proc/self/task", t.Name(), "ns/net"))
		if err != nil || l != id {
			return false
		}
	}
	return true
}

func (n homeNS) close() { n.h.Close() }

// do runs f inside the namespace: on the calling thread when it is there
// already, else on a fresh locked thread that is discarded afterwards, so
// no other goroutine ever runs in the wrong namespace.
func (n homeNS) do(f func() error) error {
	if n.own {
		return f()
	}
	runtime.LockOSThread()
	if id, err := threadNSID(); err == nil && id == n.id {
		err := f()
		runtime.UnlockOSThread()
		return err
	}
	runtime.UnlockOSThread()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(n.h); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// nsBind opens its sockets in the interface's namespace.
type nsBind struct {
	conn.Bind
	ns homeNS
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = b.ns.do(func() error {
		var e error
		fns, actual, e = b.Bind.Open(port)
		return e
	})
	return fns, actual, err
}

// nsTUN reads its MTU in the interface's namespace (wireguard-go looks the
// TUN up by name).
type nsTUN struct {
	tun.Device
	ns homeNS
}

func (t *nsTUN) MTU() (mtu int, err error) {
	err = t.ns.do(func() error {
		var e error
		mtu, e = t.Device.MTU()
		return e
	})
	return mtu, err
}

func wrapForNS(t tun.Device, b conn.Bind, ns homeNS) (tun.Device, conn.Bind) {
	if ns.own {
		return t, b
	}
	return &nsTUN{Device: t, ns: ns}, &nsBind{Bind: b, ns: ns}
}
