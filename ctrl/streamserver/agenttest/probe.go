package agenttest

import (
	"context"
	"errors"
	"io"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// Probe opens one stream to opts.Addrs[0] as opts.Node would, sends its
// Hello and returns the first command, or the error the stream ended with
// (a refusal, for example). It does not reconnect.
func Probe(ctx context.Context, opts Options) (*meshpb.ControllerMessage, error) {
	conn, err := Dial(opts.Addrs[0], opts)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	token := ""
	if opts.Token != nil {
		token = opts.Token()
	}
	stream, err := OpenStream(ctx, conn, token)
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, state: newState(), applied: opts.Applied}
	if err := stream.Send(&meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: a.Hello()}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return stream.Recv()
}
