package stream

import (
	"context"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Handler applies controller commands. Client calls it one command at a
// time, in stream order, and only for commands that passed the
// generation guard.
type Handler interface {
	// Apply makes msg's state true and says how it went: the code goes
	// into the Ack, err's text into Ack.error. ACK_OK with a non-nil
	// error is reported as ACK_FAILED. On anything but ACK_OK the
	// handler must have kept its previous state.
	Apply(ctx context.Context, msg *meshpb.ControllerMessage) (meshpb.AckCode, error)
}

// guard decides what a command does to the applied generation and builds
// its ack. apply runs the handler.
func guard(ctx context.Context, h Handler, applied Generation, msg *meshpb.ControllerMessage) (ack *meshpb.Ack, next Generation) {
	gen := genOf(msg.GetGeneration())
	ack = &meshpb.Ack{Generation: gen.proto()}
	next = applied
	defer func() { ack.Applied = next.proto() }()
	switch {
	case msg.GetGeneration() == nil:
		ack.Code, ack.Error = meshpb.AckCode_ACK_INVALID, "command without generation"
		return ack, next
	case msg.GetCmd() == nil:
		ack.Code, ack.Error = meshpb.AckCode_ACK_INVALID, "command without a body"
		return ack, next
	case !gen.After(applied):
		ack.Code = meshpb.AckCode_ACK_STALE
		ack.Error = "generation " + gen.String() + " not newer than applied " + applied.String()
		return ack, next
	}
	if d := msg.GetDelta(); d != nil {
		if base := genOf(d.GetBase()); base != applied {
			ack.Code = meshpb.AckCode_ACK_GAP
			ack.Error = "delta base " + base.String() + " is not applied " + applied.String()
			return ack, next
		}
	}
	code, err := h.Apply(ctx, msg)
	if code == meshpb.AckCode_ACK_OK && err != nil {
		code = meshpb.AckCode_ACK_FAILED
	}
	ack.Code = code
	if err != nil {
		ack.Error = err.Error()
	}
	if code == meshpb.AckCode_ACK_OK {
		next = gen
	}
	return ack, next
}
