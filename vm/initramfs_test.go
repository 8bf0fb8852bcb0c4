package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestModuleLoadOrderPutsDependenciesFirst(t *testing.T) {
	const dep = `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko
kernel/fs/fscache/fscache.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/net/dummy-mod.ko:
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
`
	const builtin = "kernel/drivers/virtio/virtio_pci.ko\n"
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr string
	}{
		{
			name:  "dependencies come first and each module once",
			names: []string{"9pnet_virtio", "9p"},
			want: []string{
				"kernel/net/9p/9pnet.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/net/9p/9pnet_virtio.ko",
				"kernel/fs/fscache/fscache.ko", "kernel/fs/netfs/netfs.ko", "kernel/fs/9p/9p.ko",
			},
		},
		{name: "built-in modules are skipped", names: []string{"virtio_pci", "overlay"}, want: []string{"kernel/fs/overlayfs/overlay.ko"}},
		{name: "dashes in file names match underscores", names: []string{"dummy_mod"}, want: []string{"kernel/drivers/net/dummy-mod.ko"}},
		{name: "an unknown module is an error", names: []string{"nosuch"}, wantErr: "module nosuch is neither built in nor in modules.dep"},
		{name: "a dependency cycle is an error", names: []string{"a"}, wantErr: "module dependency cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := moduleLoadOrder([]byte(dep), []byte(builtin), tt.names)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("load order (-want +got):\n%s", diff)
			}
		})
	}
}
