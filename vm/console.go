package vm

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// What a guest prints reaches the caller's Console writer on two paths:
// the serial console (kernel messages, /init's progress) and the command's
// output, which the guest writes to a file in the control share and the
// host follows. The emulated serial port moves about 100 KB/s, so a
// verbose test binary writing to it would be slowed down by its own logs;
// the file has no such limit.

// consoleTail is how much of the serial console a Result keeps.
const consoleTail = 1 << 20

// commandStarting is the line /init prints right before it runs the
// command; its arrival ends the boot.
var commandStarting = []byte("vpblu-vm: command starting")

// lineMux writes whole lines from several sources to one writer, so the
// serial console and the command's output never split each other's lines.
type lineMux struct {
	mu  sync.Mutex
	out io.Writer
}

func newLineMux(out io.Writer) *lineMux {
	if out == nil {
		out = io.Discard
	}
	return &lineMux{out: out}
}

// lineSource is one writer into a lineMux; it holds back an unfinished
// last line until its end arrives or Flush.
type lineSource struct {
	mux     *lineMux
	partial []byte
}

func (m *lineMux) source() *lineSource { return &lineSource{mux: m} }

// Write never fails: a failing destination must not stall the guest.
func (s *lineSource) Write(p []byte) (int, error) {
	s.partial = append(s.partial, p...)
	if i := bytes.LastIndexByte(s.partial, '\n'); i >= 0 {
		s.emit(s.partial[:i+1])
		s.partial = append(s.partial[:0], s.partial[i+1:]...)
	}
	return len(p), nil
}

// Flush writes the unfinished last line, if any.
func (s *lineSource) Flush() {
	if len(s.partial) > 0 {
		s.emit(append(s.partial, '\n'))
		s.partial = s.partial[:0]
	}
}

func (s *lineSource) emit(b []byte) {
	s.mux.mu.Lock()
	_, _ = s.mux.out.Write(b)
	s.mux.mu.Unlock()
}

// console receives QEMU's serial console (and QEMU's own messages),
// passes it on, keeps its tail for failure reports, and notes when the
// command started.
type console struct {
	out   *lineSource
	start time.Time

	mu      sync.Mutex
	tail    []byte
	line    []byte // the unfinished last line, for spotting the marker
	started time.Duration
}

func newConsole(out *lineSource, start time.Time) *console {
	return &console{out: out, start: start}
}

// Write never fails: a failing destination must not stall the guest.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tail = append(c.tail, p...)
	if over := len(c.tail) - consoleTail; over > 0 {
		c.tail = append(c.tail[:0], c.tail[over:]...)
	}
	if c.started == 0 {
		c.line = append(c.line, p...)
		if bytes.Contains(c.line, commandStarting) {
			c.started = time.Since(c.start)
			c.line = nil
		} else if i := bytes.LastIndexByte(c.line, '\n'); i >= 0 {
			c.line = append(c.line[:0], c.line[i+1:]...)
		}
	}
	return c.out.Write(p)
}

// Flush passes on an unfinished last line.
func (c *console) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Flush()
}

// Tail returns a copy of the last consoleTail bytes written.
func (c *console) Tail() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.tail)
}

// BootTime returns how long after start the command started, or zero if
// it has not.
func (c *console) BootTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// followPoll is how often a followed file is checked for new data.
const followPoll = 100 * time.Millisecond

// followFile copies what is written to path (which may not exist yet) to
// w until stop is closed, then copies the rest and returns.
func followFile(path string, w *lineSource, stop <-chan struct{}) {
	defer w.Flush()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
		}
		if f == nil {
			var err error
			f, err = os.Open(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return
			}
		}
		if f != nil {
			if _, err := io.Copy(w, f); err != nil {
				return
			}
		}
		if stopping {
			return
		}
		select {
		case <-stop:
		case <-time.After(followPoll):
		}
	}
}
