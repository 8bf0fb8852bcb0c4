package auth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Finer kinds of ErrRejected, for metric labels only.
var (
	errExpired  = fmt.Errorf("%w: expired", ErrRejected)
	errAudience = fmt.Errorf("%w: wrong audience", ErrRejected)
)

// now is the clock rejection reads; tests do not need to change it.
var now = time.Now

// rejection says why a token the API server refused was refused, as far as
// its unverified claims tell. It only labels a refusal that TokenReview
// already decided; it never accepts anything.
func rejection(token, audience string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ErrRejected
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ErrRejected
	}
	var claims struct {
		Exp int64           `json:"exp"`
		Aud json.RawMessage `json:"aud"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return ErrRejected
	}
	if claims.Exp != 0 && now().Unix() >= claims.Exp {
		return errExpired
	}
	var auds []string
	if err := json.Unmarshal(claims.Aud, &auds); err != nil {
		var one string
		if json.Unmarshal(claims.Aud, &one) == nil {
			auds = []string{one}
		}
	}
	if len(auds) > 0 && !slices.Contains(auds, audience) {
		return errAudience
	}
	return ErrRejected
}
