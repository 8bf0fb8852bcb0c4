package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
)

// ErrNoToken: the token file is missing or empty.
var ErrNoToken = errors.New("no service account token")

// tokenFile is per-RPC credentials that send "authorization: Bearer
// <token>" from a projected ServiceAccount token file. Kubelet replaces
// the file (through a symlink swap) before the token expires; the file is
// re-read whenever its identity, size or mtime changes.
type tokenFile struct {
	path string

	mu    sync.Mutex
	stamp fileStamp
	token string
}

type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

var _ credentials.PerRPCCredentials = (*tokenFile)(nil)

func (t *tokenFile) current() (string, error) {
	st, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	stamp := fileStamp{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		stamp.dev, stamp.ino = uint64(sys.Dev), sys.Ino
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && stamp == t.stamp {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrNoToken, t.path)
	}
	t.token, t.stamp = tok, stamp
	return tok, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t *tokenFile) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := t.current()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// token is never sent in cleartext.
func (*tokenFile) RequireTransportSecurity() bool { return true }
