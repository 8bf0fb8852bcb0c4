package status

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lumbrjx/vpblu/core/api/v1alpha1"
	"github.com/lumbrjx/vpblu/core/desired"
)

// Condition reasons of policies.
const (
	ReasonConflict    = "Conflict"
	ReasonNoConflict  = "NoConflict"
	ReasonValid       = "Valid"
	ReasonInvalid     = "Invalid"
	ReasonUnknownNode = "UnknownNode"
	ReasonNoVia       = "NoVia"
	ReasonPending     = "Pending"
)

// PolicyFacts are the inputs of one policy's status.
type PolicyFacts struct {
	Old        v1alpha1.PolicyStatus
	Generation int64
	// Planned: the desired state was computed from this generation.
	Planned bool
	// Problems are core/desired's problems reported on this policy.
	Problems []*desired.PolicyError
	// Nodes counts the nodes the policy concerns; Applied those whose
	// daemon runs the current desired state.
	Nodes, Applied int
	Now            time.Time
}

// PolicyStatus computes a policy's status.
func PolicyStatus(f PolicyFacts) v1alpha1.PolicyStatus {
	st := *f.Old.DeepCopy()
	if f.Planned {
		st.ObservedGeneration = f.Generation
	}
	st.Nodes, st.NodesApplied = int32(f.Nodes), int32(f.Applied)
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: st.ObservedGeneration,
			LastTransitionTime: metav1.NewTime(f.Now.UTC().Truncate(time.Second)),
		})
	}
	var conflicts, invalid []string
	invalidReason := ReasonInvalid
	for _, pe := range f.Problems {
		msg := problemMessage(pe)
		switch {
		case errors.Is(pe.Err, desired.ErrConflict):
			conflicts = append(conflicts, msg)
		case errors.Is(pe.Err, desired.ErrNoVia):
			invalid, invalidReason = append(invalid, msg), ReasonNoVia
		case errors.Is(pe.Err, desired.ErrUnknownNode):
			if invalidReason == ReasonInvalid && len(invalid) == 0 {
				invalidReason = ReasonUnknownNode
			}
			invalid = append(invalid, msg)
		default:
			invalid, invalidReason = append(invalid, msg), ReasonInvalid
		}
	}
	if len(conflicts) > 0 {
		set(v1alpha1.ConditionConflict, true, ReasonConflict, join(conflicts))
	} else {
		set(v1alpha1.ConditionConflict, false, ReasonNoConflict, "no other policy contests this one")
	}
	if len(invalid) > 0 {
		set(v1alpha1.ConditionValid, false, invalidReason, join(invalid))
	} else {
		set(v1alpha1.ConditionValid, true, ReasonValid, "every part of the spec applies")
	}
	switch {
	case !f.Planned:
		set(v1alpha1.ConditionReady, false, ReasonPending, fmt.Sprintf("generation %d is not computed yet", f.Generation))
	case f.Applied < f.Nodes:
		set(v1alpha1.ConditionReady, false, ReasonApplying, fmt.Sprintf("%d of %d nodes applied", f.Applied, f.Nodes))
	default:
		set(v1alpha1.ConditionReady, true, ReasonApplied, fmt.Sprintf("all %d nodes applied", f.Nodes))
	}
	return st
}

// problemMessage says what is wrong without repeating the object's own
// name: "spec.cidrs: conflict: ...".
func problemMessage(pe *desired.PolicyError) string {
	var b strings.Builder
	if pe.Field != "" {
		b.WriteString(pe.Field)
		b.WriteString(": ")
	}
	b.WriteString(pe.Err.Error())
	if pe.Other != (desired.Ref{}) {
		fmt.Fprintf(&b, " with %s", pe.Other)
	}
	if pe.Detail != "" {
		b.WriteString(": ")
		b.WriteString(pe.Detail)
	}
	return b.String()
}

// maxMessage keeps condition messages within what the API accepts
// (32768) with room to spare.
const maxMessage = 4096

func join(msgs []string) string {
	s := strings.Join(msgs, "; ")
	if len(s) > maxMessage {
		s = strings.ToValidUTF8(s[:maxMessage-3], "") + "..."
	}
	return s
}
