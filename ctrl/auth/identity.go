package auth

import (
	"errors"
	"fmt"
)

// Audience is the token audience daemons request for the controller.
const Audience = "vpblu.io/agent"

// Extra keys the API server sets in a TokenReview's user info for a token
// bound to a pod.
const (
	ExtraNodeName = "authentication.kubernetes.io/node-name"
	ExtraNodeUID  = "authentication.kubernetes.io/node-uid"
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
)

// Sentinel errors; Reason maps each to a metric label.
var (
	// ErrNoToken: the stream carried no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrRejected: the API server did not authenticate the token (bad
	// signature, expired, wrong audience, bound pod gone).
	ErrRejected = errors.New("token rejected")
	// ErrServiceAccount: the token is valid but belongs to a ServiceAccount
	// that is not a vpblu agent.
	ErrServiceAccount = errors.New("service account is not a vpblu agent")
	// ErrNotBound: the token is not bound to a pod on a node.
	ErrNotBound = errors.New("token is not bound to a pod on a node")
	// ErrNodeMismatch: the daemon claims a node other than its token's.
	ErrNodeMismatch = errors.New("node does not match token")
	// ErrReview: the TokenReview itself failed; the daemon is not at fault.
	ErrReview = errors.New("token review failed")
)

// Identity is what a reviewed token says about the daemon presenting it.
type Identity struct {
	// Node is the node the token's pod is bound to.
	Node string
	// NodeUID is that node's UID when the API server knew it at issue time.
	NodeUID string
	// Namespace, ServiceAccount and Pod name the daemon's pod.
	Namespace      string
	ServiceAccount string
	Pod            string
	PodUID         string
}

// CheckNode refuses a daemon that claims to speak for a node other than
// the one its token is bound to.
func (id Identity) CheckNode(claimed string) error {
	if claimed != id.Node {
		return fmt.Errorf("%w: token is bound to node %q, daemon claims %q", ErrNodeMismatch, id.Node, claimed)
	}
	return nil
}

// Reason names err for the refusal metric and events: no_token, expired,
// audience, rejected, service_account, not_bound, node_mismatch, review or
// other.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, errExpired):
		return "expired"
	case errors.Is(err, errAudience):
		return "audience"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrServiceAccount):
		return "service_account"
	case errors.Is(err, ErrNotBound):
		return "not_bound"
	case errors.Is(err, ErrNodeMismatch):
		return "node_mismatch"
	case errors.Is(err, ErrReview):
		return "review"
	default:
		return "other"
	}
}
