package desired

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
)

// Sentinel errors that every *PolicyError wraps one of; test with
// errors.Is.
var (
	// ErrConflict: two objects claim the same thing; one wins by the
	// precedence rules and the other is reported.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: an object passed admission but cannot be applied as
	// written (an unparsable CIDR, a bad selector, a port out of range).
	// The invalid part is left out; the rest applies.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownNode: an object names a node that does not exist (yet).
	ErrUnknownNode = errors.New("unknown node")
	// ErrNoVia: no via candidate of a RoutePolicy qualifies, so its CIDRs
	// are not routed.
	ErrNoVia = errors.New("no usable via")
)

// Kind names the kind of object a problem belongs to.
type Kind string

// Kinds of objects problems are reported on.
const (
	KindNode           Kind = "Node"
	KindTunnelPolicy   Kind = "TunnelPolicy"
	KindRoutePolicy    Kind = "RoutePolicy"
	KindBlockPolicy    Kind = "BlockPolicy"
	KindRotationPolicy Kind = "RotationPolicy"
)

// Ref names one object.
type Ref struct {
	Kind Kind
	Name string
}

func (r Ref) String() string { return fmt.Sprintf("%s %q", r.Kind, r.Name) }

// PolicyError is a problem the controller puts in a status condition of
// Object: a conflict (Other is the object that won), an invalid part, an
// unknown node, or a RoutePolicy without a usable via.
type PolicyError struct {
	// Object is the object the problem is reported on (for a conflict, the
	// one that lost).
	Object Ref
	// Other is the other party of a conflict (the winner); zero otherwise.
	Other Ref
	// Field is where in Object's spec the problem sits, such as
	// "spec.cidrs" or "spec.listenPort"; empty for a Node.
	Field string
	// Detail says what is wrong and what was done about it.
	Detail string
	// Err is ErrConflict, ErrInvalid, ErrUnknownNode or ErrNoVia.
	Err error
}

func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object.String())
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

func (e *PolicyError) Unwrap() error { return e.Err }

// ConditionType is the status condition the problem belongs in:
// v1alpha1.ConditionConflict for conflicts, v1alpha1.ConditionValid (set to
// False) for everything else.
func (e *PolicyError) ConditionType() string {
	if errors.Is(e.Err, ErrConflict) {
		return v1alpha1.ConditionConflict
	}
	return v1alpha1.ConditionValid
}

func comparePolicyErrors(a, b *PolicyError) int {
	return cmp.Or(
		cmp.Compare(a.Object.Kind, b.Object.Kind),
		cmp.Compare(a.Object.Name, b.Object.Name),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Err.Error(), b.Err.Error()),
		cmp.Compare(a.Detail, b.Detail),
	)
}
