package vm

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qemu"
	"github.com/digitalocean/go-qemu/qmp"
)

// monitor drives a running QEMU through QMP: it asks for status, quits it,
// and records why it shut down.
type monitor struct {
	dom    *qemu.Domain
	events chan qmp.Event
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	reason string
}

// dialMonitor connects to QEMU's QMP abstract unix socket, retrying until
// QEMU listens, ctx ends, or exited is closed.
func dialMonitor(ctx context.Context, socket string, exited <-chan struct{}) (*monitor, error) {
	for {
		mon, err := qmp.NewSocketMonitor("unix", "@"+socket, time.Second)
		if err == nil {
			if err := mon.Connect(); err != nil {
				mon.Disconnect()
				return nil, fmt.Errorf("connecting to qmp: %w", err)
			}
			return newMonitor(mon)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to qmp: %w", ctx.Err())
		case <-exited:
			return nil, fmt.Errorf("connecting to qmp: qemu exited: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func newMonitor(mon *qmp.SocketMonitor) (*monitor, error) {
	dom, err := qemu.NewDomain(mon, "vpblu-vm")
	if err != nil {
		mon.Disconnect()
		return nil, fmt.Errorf("connecting to qmp: %w", err)
	}
	events, done, err := dom.Events()
	if err != nil {
		dom.Close()
		return nil, fmt.Errorf("subscribing to qmp events: %w", err)
	}
	m := &monitor{dom: dom, events: events, done: done}
	m.wg.Add(1)
	go m.watch()
	return m, nil
}

// watch records the reason of QEMU's SHUTDOWN event (guest-shutdown,
// guest-reset, host-qmp-quit, ...). It reads events until the connection
// closes: an unread event would block the monitor.
func (m *monitor) watch() {
	defer m.wg.Done()
	for ev := range m.events {
		if ev.Event != "SHUTDOWN" {
			continue
		}
		reason, _ := ev.Data["reason"].(string)
		m.mu.Lock()
		if m.reason == "" {
			m.reason = reason
		}
		m.mu.Unlock()
	}
}

// Status returns the VM's run state (running, paused, guest-panicked, ...).
func (m *monitor) Status() (qemu.Status, error) {
	return m.dom.Status()
}

// Quit asks QEMU to exit at once. It may block if QEMU hangs; callers
// bound it with a kill.
func (m *monitor) Quit() error {
	_, err := m.dom.Run(qmp.Command{Execute: "quit"})
	return err
}

// ShutdownReason returns the reason of the SHUTDOWN event seen, or "".
func (m *monitor) ShutdownReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reason
}

// Close disconnects once QEMU has exited (the socket is then closed), so
// closing never waits for a live QEMU.
func (m *monitor) Close() {
	m.dom.Close()
	m.wg.Wait()
	close(m.done)
}
