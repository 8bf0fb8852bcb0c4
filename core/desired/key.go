package desired

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// ErrInvalidKey is wrapped by errors about malformed public keys.
var ErrInvalidKey = errors.New("invalid public key")

// KeyLen is the length of a WireGuard (Curve25519) public key.
const KeyLen = 32

// Key is a WireGuard public key. The zero Key means "no key reported yet";
// a node without a key is not a peer.
type Key [KeyLen]byte

// String returns the key in standard base64, as `wg show` prints it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is the zero Key (no key).
func (k Key) IsZero() bool { return k == Key{} }

// ParseKey parses a base64 public key as String renders it.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return KeyFromBytes(b)
}

// KeyFromBytes copies a 32-byte key. Any other length is an error, and so
// is the all-zero key.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeyLen {
		return k, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), KeyLen)
	}
	copy(k[:], b)
	if k.IsZero() {
		return Key{}, fmt.Errorf("%w: all zero", ErrInvalidKey)
	}
	return k, nil
}
