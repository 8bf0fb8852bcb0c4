package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
)

// TokenReviewer creates TokenReviews; the typed client-go client is one.
type TokenReviewer interface {
	Create(ctx context.Context, review *authnv1.TokenReview, opts metav1.CreateOptions) (*authnv1.TokenReview, error)
}

var _ TokenReviewer = authnv1client.TokenReviewInterface(nil)

// Options configure a Reviewer.
type Options struct {
	// Reviewer calls the TokenReview API.
	Reviewer TokenReviewer
	// Audience daemons' tokens must carry (default Audience).
	Audience string
	// ServiceAccounts lists the agents' accounts as "namespace:name". A pod
	// bound token of any other account is refused, so a workload on a node
	// cannot speak for that node. Empty allows any account (tests only).
	ServiceAccounts []string
}

// Reviewer authenticates daemon tokens with TokenReview.
type Reviewer struct {
	opts Options
}

// NewReviewer returns a Reviewer.
func NewReviewer(opts Options) (*Reviewer, error) {
	if opts.Reviewer == nil {
		return nil, errors.New("auth: no TokenReview client")
	}
	if opts.Audience == "" {
		opts.Audience = Audience
	}
	for _, sa := range opts.ServiceAccounts {
		if ns, name, ok := strings.Cut(sa, ":"); !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("auth: service account %q: want namespace:name", sa)
		}
	}
	return &Reviewer{opts: opts}, nil
}

// Authenticate reviews token and returns the daemon's identity. Errors wrap
// the sentinels of this package.
func (r *Reviewer) Authenticate(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	review, err := r.opts.Reviewer.Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{r.opts.Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrReview, err)
	}
	st := review.Status
	if !st.Authenticated {
		return Identity{}, fmt.Errorf("%w: %w", rejection(token, r.opts.Audience), errors.New(st.Error))
	}
	if !slices.Contains(st.Audiences, r.opts.Audience) {
		return Identity{}, fmt.Errorf("%w: audiences %v do not include %q", ErrRejected, st.Audiences, r.opts.Audience)
	}
	ns, sa, ok := serviceAccount(st.User.Username)
	if !ok {
		return Identity{}, fmt.Errorf("%w: user %q is not a service account", ErrServiceAccount, st.User.Username)
	}
	if len(r.opts.ServiceAccounts) > 0 && !slices.Contains(r.opts.ServiceAccounts, ns+":"+sa) {
		return Identity{}, fmt.Errorf("%w: %s:%s", ErrServiceAccount, ns, sa)
	}
	id := Identity{
		Node:           extra(st.User.Extra, ExtraNodeName),
		NodeUID:        extra(st.User.Extra, ExtraNodeUID),
		Namespace:      ns,
		ServiceAccount: sa,
		Pod:            extra(st.User.Extra, ExtraPodName),
		PodUID:         extra(st.User.Extra, ExtraPodUID),
	}
	if id.Node == "" || id.Pod == "" {
		return Identity{}, fmt.Errorf("%w: %s:%s", ErrNotBound, ns, sa)
	}
	return id, nil
}

func serviceAccount(username string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}

func extra(m map[string]authnv1.ExtraValue, key string) string {
	if v := m[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}
