package wg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// SocketDir is where userspace interfaces keep their UAPI sockets (fixed
// by wireguard-go, wgctrl and wg(8)). Network namespaces do not separate
// it: two processes running an interface of the same name need separate
// mount namespaces.
const SocketDir = "/var/run/wireguard"

// TxQueueLen is the transmit queue of a userspace interface's TUN: how
// many packets the kernel holds while wireguard-go does not read them.
// TUN's default of 500 lasts about 100 ms at a few thousand packets per
// second, less than a busy node can keep a process off the CPU (a device
// process starting next to it is enough); beyond it the kernel drops.
const TxQueueLen = 8192

// UserspaceBackend runs wireguard-go devices, one per interface, each on a
// TUN device with a UAPI socket in SocketDir.
//
// Without a daemon command the devices run inside this process and end
// with it. With one, each interface runs in a process of its own, started
// detached (its own session) as daemon + [name, mtu] and running
// RunDevice, so interfaces outlive the daemon like kernel ones do; a new
// backend adopts a running device process whose socket answers.
//
// It only ever drives, or removes, interfaces it created or adopted that
// way; any other link of the same name is ErrNotOurs.
type UserspaceBackend struct {
	mtu    int
	daemon []string

	mu   sync.Mutex
	devs map[string]*userDevice // devices in this process
	ext  map[string]bool        // devices in device processes
}

var _ Backend = (*UserspaceBackend)(nil)

// NewUserspace returns the userspace backend; new interfaces get mtu
// (DefaultMTU when 0) until package route sets theirs. daemon, when
// given, is the command that runs one device process (see
// UserspaceBackend).
func NewUserspace(mtu int, daemon ...string) *UserspaceBackend {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	return &UserspaceBackend{mtu: mtu, daemon: daemon, devs: map[string]*userDevice{}, ext: map[string]bool{}}
}

// Kind implements Backend.
func (*UserspaceBackend) Kind() Kind { return Userspace }

func sockPath(name string) string { return filepath.Join(SocketDir, name+".sock") }

// socketAnswers reports whether a device serves name's UAPI socket.
func socketAnswers(name string) bool {
	c, err := net.DialTimeout("unix", sockPath(name), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Ensure implements Backend. A device whose TUN was removed from outside,
// or whose socket was deleted, is rebuilt.
func (u *UserspaceBackend) Ensure(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if d := u.devs[name]; d != nil {
		if d.alive() {
			return d.ns.do(func() error { return linkUp(name) })
		}
		d.close()
		delete(u.devs, name)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		if len(u.daemon) > 0 && l.Type() == "tuntap" && socketAnswers(name) {
			u.ext[name] = true
			return linkUp(name)
		}
		delete(u.ext, name)
		return fmt.Errorf("%s: %w", name, ErrNotOurs)
	}
	delete(u.ext, name)
	if len(u.daemon) > 0 {
		if err := u.spawn(name); err != nil {
			return err
		}
		u.ext[name] = true
		return linkUp(name)
	}
	d, err := newUserDevice(name, u.mtu)
	if err != nil {
		return err
	}
	u.devs[name] = d
	return nil
}

// spawn starts a detached device process for name in the calling
// thread's network namespace and waits until its socket answers.
func (u *UserspaceBackend) spawn(name string) error {
	argv := append(append([]string{}, u.daemon...), name, strconv.Itoa(u.mtu))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting device process for %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it whenever it ends
	deadline := time.After(10 * time.Second)
	for {
		if _, err := netlink.LinkByName(name); err == nil && socketAnswers(name) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("device process for %s exited: %v", name, err)
		case <-deadline:
			_ = cmd.Process.Kill()
			return fmt.Errorf("device process for %s: no socket after 10s", name)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// RunDevice runs userspace interface name (created with mtu) in the
// calling process, in the calling thread's network namespace, until ctx
// ends, the interface is deleted, or its UAPI socket is removed; then it
// removes both. A device process of a daemon-mode UserspaceBackend runs
// it.
func RunDevice(ctx context.Context, name string, mtu int) error {
	if err := validName(name); err != nil {
		return err
	}
	d, err := newUserDevice(name, mtu)
	if err != nil {
		return err
	}
	defer d.close()
	select {
	case <-ctx.Done():
	case <-d.dev.Wait():
	case <-d.served:
	}
	return nil
}

type userDevice struct {
	dev    *device.Device
	uapi   net.Listener
	ns     homeNS
	served chan struct{} // closed when the UAPI accept loop ends
}

func newUserDevice(name string, mtu int) (_ *userDevice, err error) {
	ns, err := captureNS()
	if err != nil {
		return nil, err
	}
	tdev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		ns.close()
		return nil, fmt.Errorf("creating tun %s: %w", name, err)
	}
	t, b := wrapForNS(udpChecksumTUN{tdev}, conn.NewDefaultBind(), ns)
	d := &userDevice{
		dev:    device.NewDevice(t, b, device.NewLogger(device.LogLevelSilent, "")),
		ns:     ns,
		served: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		close(d.served)
		return nil, fmt.Errorf("opening uapi socket for %s: %w", name, err)
	}
	d.uapi, err = ipc.UAPIListen(name, f)
	_ = f.Close()
	if err != nil {
		close(d.served)
		return nil, fmt.Errorf("listening on uapi socket for %s: %w", name, err)
	}
	go d.serve()
	if err := d.dev.Up(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	if err := setTxQueueLen(name, TxQueueLen); err != nil {
		return nil, err
	}
	if err := linkUp(name); err != nil {
		return nil, err
	}
	return d, nil
}

func setTxQueueLen(name string, n int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if l.Attrs().TxQLen == n {
		return nil
	}
	if err := netlink.LinkSetTxQLen(l, n); err != nil {
		return fmt.Errorf("setting the transmit queue of %s: %w", name, err)
	}
	return nil
}

func (d *userDevice) serve() {
	defer close(d.served)
	for {
		c, err := d.uapi.Accept()
		if err != nil {
			return
		}
		go d.dev.IpcHandle(c)
	}
}

func (d *userDevice) alive() bool {
	select {
	case <-d.dev.Wait():
		return false
	case <-d.served:
		return false
	default:
		return true
	}
}

// close stops the UAPI listener (which unlinks the socket) and the device
// (which removes the TUN).
func (d *userDevice) close() {
	if d.uapi != nil {
		_ = d.uapi.Close()
		<-d.served
	}
	d.dev.Close()
	d.ns.close()
}

func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// Delete implements Backend. A device process is stopped by deleting its
// TUN; a link of that name this backend did not create or adopt is left
// alone and reported as ErrNotOurs.
func (u *UserspaceBackend) Delete(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if d := u.devs[name]; d != nil {
		d.close()
		delete(u.devs, name)
		return nil
	}
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		delete(u.ext, name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	adoptable := len(u.daemon) > 0 && l.Type() == "tuntap" && socketAnswers(name)
	if !u.ext[name] && !adoptable {
		return fmt.Errorf("%s: %w", name, ErrNotOurs)
	}
	delete(u.ext, name)
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	// The device process ends and unlinks its socket.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sockPath(name)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return fmt.Errorf("device process of %s did not exit", name)
}

func (u *UserspaceBackend) owned(name string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if d := u.devs[name]; d != nil && d.alive() {
		return nil
	}
	if u.ext[name] {
		return nil
	}
	return fmt.Errorf("%s: %w", name, ErrNotFound)
}

// Device implements Backend.
func (u *UserspaceBackend) Device(name string) (*wgtypes.Device, error) {
	if err := u.owned(name); err != nil {
		return nil, err
	}
	return ctlDevice(name)
}

// Configure implements Backend.
func (u *UserspaceBackend) Configure(name string, cfg wgtypes.Config) error {
	if err := u.owned(name); err != nil {
		return err
	}
	return ctlConfigure(name, cfg)
}

// Close implements Backend: interfaces running in this process are
// removed (they cannot outlive it); device processes keep running.
func (u *UserspaceBackend) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	for name, d := range u.devs {
		d.close()
		delete(u.devs, name)
	}
	return nil
}
