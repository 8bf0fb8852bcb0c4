package vm

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The archive must read back with another cpio implementation (busybox's,
// the one from busybox-static the guest boots with).
func TestCPIOWriterArchiveListsWithBusybox(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("TEST NOT RUN: busybox missing (run hack/deps.sh vm)")
	}
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	steps := []error{
		c.Dir("bin", 0o755),
		c.File("bin/three", 0o755, []byte("abc")),
		c.File("empty", 0o644, nil),
		c.Symlink("bin/sh", "busybox"),
		c.CharDev("console", 0o600, 5, 1),
		c.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", buf.Len())
	}
	cmd := exec.Command(busybox, "cpio", "-t", "-v")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v\n%s", err, out)
	}
	// Mode, size and name of each entry (busybox lists links and devices
	// with size 0).
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		got = append(got, f[0]+" "+f[2]+" "+strings.Join(f[5:], " "))
	}
	want := []string{
		"drwxr-xr-x 0 bin",
		"-rwxr-xr-x 3 bin/three",
		"-rw-r--r-- 0 empty",
		"lrwxrwxrwx 0 bin/sh -> busybox",
		"crw------- 0 console",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listing (-want +got):\n%s\nfull listing:\n%s", diff, out)
	}
}
