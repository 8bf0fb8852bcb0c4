package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConsoleForwardsKeepsTailAndTimesCommandStart(t *testing.T) {
	tests := []struct {
		name        string
		writes      []string
		wantStarted bool
	}{
		{name: "marker in one write", writes: []string{"boot\nvpblu-vm: command starting at 1.0s\nout\n"}, wantStarted: true},
		{name: "marker split across writes", writes: []string{"boot\nvpblu-vm: comm", "and starting at 1.0s\n"}, wantStarted: true},
		{name: "no marker, no boot time", writes: []string{"vpblu-vm: setup failed\n", "vpblu-vm: command\n"}, wantStarted: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := newConsole(newLineMux(&out).source(), time.Now().Add(-time.Second))
			for _, w := range tt.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			all := strings.Join(tt.writes, "")
			if out.String() != all || string(c.Tail()) != all {
				t.Errorf("forwarded %q, tail %q; want %q", out.String(), c.Tail(), all)
			}
			if got := c.BootTime() >= time.Second; got != tt.wantStarted {
				t.Errorf("boot time %s; want started %v", c.BootTime(), tt.wantStarted)
			}
		})
	}
}

func TestConsoleTailIsBounded(t *testing.T) {
	c := newConsole(newLineMux(nil).source(), time.Now())
	chunk := bytes.Repeat([]byte("x"), consoleTail/3)
	for range 4 {
		c.Write(chunk)
	}
	c.Write([]byte("end"))
	tail := c.Tail()
	if len(tail) != consoleTail || !bytes.HasSuffix(tail, []byte("xend")) {
		t.Errorf("tail is %d bytes ending %q; want %d ending xend", len(tail), tail[max(0, len(tail)-4):], consoleTail)
	}
}

func TestLineMuxNeverSplitsLinesOfTwoSources(t *testing.T) {
	var out bytes.Buffer
	mux := newLineMux(&out)
	serial, output := mux.source(), mux.source()
	serial.Write([]byte("kernel: hal"))
	output.Write([]byte("=== RUN Test\n--- PA"))
	serial.Write([]byte("f a line\n"))
	output.Write([]byte("SS: Test\nunfinished"))
	output.Flush()
	want := "=== RUN Test\nkernel: half a line\n--- PASS: Test\nunfinished\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("muxed (-want +got):\n%s", diff)
	}
}

func TestFollowFileForwardsAppendsUntilStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output")
	var out bytes.Buffer
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		followFile(path, newLineMux(&out).source(), stop)
		close(done)
	}()
	// The file appears late and grows while followed; what is written
	// last, right before the stop, still arrives.
	time.Sleep(2 * followPoll)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("first\n")
	time.Sleep(2 * followPoll)
	f.WriteString("second\nno newline")
	close(stop)
	<-done
	if diff := cmp.Diff("first\nsecond\nno newline\n", out.String()); diff != "" {
		t.Errorf("followed (-want +got):\n%s", diff)
	}
}
