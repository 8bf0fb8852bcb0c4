package authtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumbrjx/vpblu/tools/testenv"
)

// SigningKey is a ServiceAccount token signing key a test owns: the API
// server signs with it (see Flags), so the test can forge tokens the server
// accepts as genuinely its own.
type SigningKey struct {
	key  *rsa.PrivateKey
	path string
}

// NewSigningKey writes a fresh RSA key into dir.
func NewSigningKey(dir string) (*SigningKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	path := filepath.Join(dir, "sa-signing.key")
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return &SigningKey{key: key, path: path}, nil
}

// Flags are the kube-apiserver flags (testenv.Options.APIServerFlags) that
// make the server sign and verify tokens with this key.
func (k *SigningKey) Flags() map[string]string {
	return map[string]string{
		"service-account-signing-key-file": k.path,
		"service-account-key-file":         k.path,
	}
}

// Expire re-signs a token the server issued with its validity moved into
// the past (issued two hours ago, expired an hour ago), everything else
// untouched: only its expiry can make the server refuse it.
func (k *SigningKey) Expire(token string) (string, error) {
	now := time.Now()
	return k.Resign(token, func(claims map[string]any) {
		claims["iat"] = now.Add(-2 * time.Hour).Unix()
		claims["nbf"] = now.Add(-2 * time.Hour).Unix()
		claims["exp"] = now.Add(-time.Hour).Unix()
	})
}

// Resign decodes a token's claims, lets edit change them, and signs the
// result with the key. With an edit that changes nothing the server must
// still accept the token: tests use that as the control for Expire.
func (k *SigningKey) Resign(token string, edit func(claims map[string]any)) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decode claims: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("parse claims: %w", err)
	}
	edit(claims)
	raw, err = json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ForgeWithOtherKey re-signs a token with a key the server does not know.
func ForgeWithOtherKey(token string) (string, error) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	signed := parts[0] + "." + parts[1]
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, other, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// StartAPIServer runs a real API server that signs ServiceAccount tokens
// with a fresh key the test owns, and stops it when the test ends.
func StartAPIServer(t testing.TB) (*testenv.Env, *SigningKey) {
	t.Helper()
	key, err := NewSigningKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.New(testenv.Options{APIServerFlags: key.Flags()})
	if err != nil {
		t.Fatalf("real API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop API server: %v", err)
		}
	})
	return env, key
}
