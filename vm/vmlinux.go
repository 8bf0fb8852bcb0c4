package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// QEMU boots an uncompressed ELF kernel through its PVH entry point,
// skipping the firmware's real-mode boot and the kernel's self
// decompression, which under emulation take seconds (measured: the first
// kernel message 0.03–0.4 s after QEMU starts instead of 5–8 s). Debian
// ships only the compressed bzImage, so Prepare extracts the ELF once.

// bzImage setup header fields (Documentation/arch/x86/boot.rst).
const (
	setupSectsOff    = 0x1f1
	headerMagicOff   = 0x202
	bootVersionOff   = 0x206
	payloadOffsetOff = 0x248
	payloadLengthOff = 0x24c
)

// bzImagePayload returns the compressed kernel inside a bzImage, without
// the four-byte uncompressed size the build appends to it.
func bzImagePayload(img []byte) ([]byte, error) {
	if len(img) < payloadLengthOff+4 || string(img[headerMagicOff:headerMagicOff+4]) != "HdrS" {
		return nil, errors.New("not a bzImage")
	}
	if v := binary.LittleEndian.Uint16(img[bootVersionOff:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setupSects := int(img[setupSectsOff])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(img[payloadOffsetOff:]))
	length := int(binary.LittleEndian.Uint32(img[payloadLengthOff:]))
	if length < 4 || start+length > len(img) {
		return nil, errors.New("payload outside the image")
	}
	return img[start : start+length-4], nil
}

// extractVmlinux decompresses the kernel ELF out of the bzImage at src into
// dst. It reports false, and writes nothing, when the kernel has no PVH
// entry point (then QEMU must boot the bzImage).
func extractVmlinux(ctx context.Context, src, dst string) (bool, error) {
	img, err := os.ReadFile(src)
	if err != nil {
		return false, err
	}
	payload, err := bzImagePayload(img)
	if err != nil {
		return false, fmt.Errorf("extracting vmlinux from %s: %w", src, err)
	}
	elfData, err := decompressPayload(ctx, payload)
	if err != nil {
		return false, fmt.Errorf("extracting vmlinux from %s: %w", src, err)
	}
	pvh, err := hasPVHEntry(elfData)
	if err != nil || !pvh {
		return false, err
	}
	if err := os.WriteFile(dst, elfData, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// decompressPayload decompresses gzip in process and xz and zstd with the
// host's tools (busybox's xz lacks the x86 BCJ filter kernels use).
func decompressPayload(ctx context.Context, payload []byte) ([]byte, error) {
	var tool, pkg string
	switch {
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(payload, []byte("\xfd7zXZ\x00")):
		tool, pkg = "xz", "xz-utils"
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		tool, pkg = "zstd", "zstd"
	default:
		return nil, errors.New("unknown kernel compression")
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (package %s)", ErrMissingTool, tool, pkg)
	}
	cmd := exec.CommandContext(ctx, path, "-dc")
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc: %w: %s", tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// hasPVHEntry reports whether an ELF kernel has the Xen PVH entry note
// (XEN_ELFNOTE_PHYS32_ENTRY) QEMU needs to boot it directly.
func hasPVHEntry(data []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return false, fmt.Errorf("reading vmlinux: %w", err)
	}
	const xenElfnotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return false, fmt.Errorf("reading vmlinux notes: %w", err)
		}
		for len(notes) >= 12 {
			nameSz := int(binary.LittleEndian.Uint32(notes[0:]))
			descSz := int(binary.LittleEndian.Uint32(notes[4:]))
			typ := binary.LittleEndian.Uint32(notes[8:])
			name := notes[12:min(len(notes), 12+nameSz)]
			if string(bytes.TrimRight(name, "\x00")) == "Xen" && typ == xenElfnotePhys32Entry {
				return true, nil
			}
			next := 12 + align4(nameSz) + align4(descSz)
			if next > len(notes) {
				break
			}
			notes = notes[next:]
		}
	}
	return false, nil
}

func align4(n int) int { return (n + 3) &^ 3 }
