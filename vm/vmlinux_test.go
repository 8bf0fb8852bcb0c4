package vm

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bzImage builds the parts of a bzImage bzImagePayload reads.
func bzImage(setupSects byte, version uint16, payloadOffset int, payload []byte) []byte {
	sects := int(setupSects)
	if sects == 0 {
		sects = 4
	}
	start := (sects+1)*512 + payloadOffset
	img := make([]byte, start+len(payload)+16)
	img[setupSectsOff] = setupSects
	copy(img[headerMagicOff:], "HdrS")
	binary.LittleEndian.PutUint16(img[bootVersionOff:], version)
	binary.LittleEndian.PutUint32(img[payloadOffsetOff:], uint32(payloadOffset))
	binary.LittleEndian.PutUint32(img[payloadLengthOff:], uint32(len(payload)))
	copy(img[start:], payload)
	return img
}

func TestBzImagePayloadDropsSizeTrailer(t *testing.T) {
	payload := []byte("compressed-kernel\x00\x10\x00\x00")
	tests := []struct {
		name    string
		img     []byte
		want    string
		wantErr string
	}{
		{name: "payload after the setup sectors", img: bzImage(27, 0x20f, 0x3a0, payload), want: "compressed-kernel"},
		{name: "zero setup sectors mean four", img: bzImage(0, 0x20f, 0, payload), want: "compressed-kernel"},
		{name: "old boot protocol is refused", img: bzImage(27, 0x207, 0, payload), wantErr: "no payload fields"},
		{name: "no header magic is refused", img: make([]byte, 4096), wantErr: "not a bzImage"},
		{name: "a payload beyond the file is refused", img: bzImage(27, 0x20f, 0, payload)[:28*512+4], wantErr: "payload outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bzImagePayload(tt.img)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
}
