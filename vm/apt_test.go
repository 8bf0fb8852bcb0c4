package vm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseImageDependsFindsKernelPackage(t *testing.T) {
	tests := []struct {
		name        string
		show        string
		wantPkg     string
		wantVersion string
		wantErr     bool
	}{
		{
			name:        "a pinned version is taken from the dependency",
			show:        "Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n",
			wantPkg:     "linux-image-6.1.0-56-amd64",
			wantVersion: "6.1.192-2",
		},
		{
			name:    "an unpinned dependency leaves the version to look up",
			show:    "Package: linux-image-6.12-amd64\nDepends: initramfs-tools, linux-image-6.12.117+deb12-amd64\n",
			wantPkg: "linux-image-6.12.117+deb12-amd64",
		},
		{name: "no kernel dependency is an error", show: "Package: x\nDepends: libc6 (>= 2.36)\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg, version, err := parseImageDepends([]byte(tt.show))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff([2]string{tt.wantPkg, tt.wantVersion}, [2]string{pkg, version}); diff != "" {
				t.Errorf("package, version (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseVersionReadsVersionField(t *testing.T) {
	got, err := parseVersion([]byte("Package: p\nVersion: 6.12.117-1~deb12u1\nArchitecture: amd64\n"))
	if err != nil || got != "6.12.117-1~deb12u1" {
		t.Errorf("parseVersion = %q, %v; want 6.12.117-1~deb12u1", got, err)
	}
	if _, err := parseVersion([]byte("Package: p\n")); err == nil {
		t.Error("parseVersion without a Version field succeeded")
	}
}

func TestKernelByNameKnowsEveryKernel(t *testing.T) {
	for _, k := range Kernels {
		got, err := KernelByName(k.Name)
		if err != nil || got != k {
			t.Errorf("KernelByName(%q) = %v, %v", k.Name, got, err)
		}
	}
	if _, err := KernelByName("2.6"); err == nil {
		t.Error("KernelByName(2.6) succeeded")
	}
}
