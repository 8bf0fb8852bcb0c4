package keys

import (
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// redacted is what a Private prints as, whatever the verb.
const redacted = "[redacted private key]"

// Private is a WireGuard private key that cannot be printed. Copies of a
// Private share one buffer, so Zero clears the key for every holder.
type Private struct {
	b *[wgtypes.KeyLen]byte
}

// NewPrivate wraps a raw key, e.g. a fixed key in a test. The caller
// should clear its own copy.
func NewPrivate(k wgtypes.Key) Private { return newPrivate(k) }

func newPrivate(k wgtypes.Key) Private {
	b := new([wgtypes.KeyLen]byte)
	*b = k
	return Private{b: b}
}

// Key returns the key in the form wgctrl takes. The result is a copy the
// package cannot zeroize: hand it to wgctrl and drop it, never print it
// (wgtypes.Key prints itself in base64).
func (p Private) Key() wgtypes.Key {
	if p.b == nil {
		return wgtypes.Key{}
	}
	return wgtypes.Key(*p.b)
}

// Public derives the public key.
func (p Private) Public() wgtypes.Key {
	if p.IsZero() {
		return wgtypes.Key{}
	}
	return p.Key().PublicKey()
}

// IsZero reports whether the key is unset or has been zeroized.
func (p Private) IsZero() bool {
	if p.b == nil {
		return true
	}
	var acc byte
	for _, c := range p.b {
		acc |= c
	}
	return acc == 0
}

// Equal reports whether two keys hold the same bytes.
func (p Private) Equal(o Private) bool { return p.Key() == o.Key() }

// Zero overwrites the key in memory.
func (p Private) Zero() {
	if p.b == nil {
		return
	}
	clear(p.b[:])
}

// String redacts the key.
func (Private) String() string { return redacted }

// GoString redacts the key for %#v.
func (Private) GoString() string { return redacted }

// Format redacts the key for every verb, %x and %q included.
func (Private) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue redacts the key in slog output.
func (Private) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the key in encoders (JSON, YAML, text).
func (Private) MarshalText() ([]byte, error) { return []byte(redacted), nil }

var (
	_ fmt.Formatter  = Private{}
	_ fmt.GoStringer = Private{}
	_ slog.LogValuer = Private{}
)
