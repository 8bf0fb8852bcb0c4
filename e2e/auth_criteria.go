package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// TestStreamAuth (§12.13, §7.3): the controller refuses a stream without a
// token or with a bad one, refuses a node's agent speaking for another
// node, and serves an agent speaking for its own node.
func TestStreamAuth(t *testing.T, c Cluster) {
	ctx := ctxFor(t, 2*time.Minute)
	nodes := c.Nodes()
	if len(nodes) < 2 {
		t.Fatal("needs two nodes")
	}
	tokenA, err := c.AgentToken(ctx, nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		token    string
		claim    string
		wantCode codes.Code
	}{
		{"no token is refused", "", nodes[0].Name, codes.Unauthenticated},
		{"a token that is not a token is refused", "not-a-token", nodes[0].Name, codes.Unauthenticated},
		{"a forged token is refused", forge(tokenA), nodes[0].Name, codes.Unauthenticated},
		{"node A's token claiming node B is refused", tokenA, nodes[1].Name, codes.PermissionDenied},
		{"node A's token claiming node A is served", tokenA, nodes[0].Name, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := openStream(ctx, c, tc.token, tc.claim)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.wantCode {
				t.Errorf("stream ended with %s, want %s", got, tc.wantCode)
			}
		})
	}
}

// forge flips a character in a token's signature.
func forge(token string) string {
	if token == "" {
		return "x"
	}
	b := []byte(token)
	last := len(b) - 2
	if b[last] == 'A' {
		b[last] = 'B'
	} else {
		b[last] = 'A'
	}
	return string(b)
}

// openStream connects to the leading controller as an agent of node claim
// with token, sends Hello and returns codes.OK if a SyncState came back, or
// the code the stream ended with.
func openStream(ctx context.Context, c Cluster, token, claim string) (codes.Code, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CABundle()) {
		return 0, fmt.Errorf("no CA certificate in the cluster's bundle")
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	for _, addr := range c.StreamAddrs() {
		code, err := tryStream(ctx, addr, creds, token, claim)
		if err != nil {
			return 0, err
		}
		if code == codes.Unavailable {
			continue // a standby: "not leader"
		}
		return code, nil
	}
	return 0, fmt.Errorf("no controller at %v accepted the stream as leader", c.StreamAddrs())
}

func tryStream(ctx context.Context, addr string, creds credentials.TransportCredentials, token, claim string) (codes.Code, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := meshpb.NewMeshClient(conn).Connect(ctx)
	if err != nil {
		return status.Code(err), nil
	}
	hello := &meshpb.AgentMessage{Msg: &meshpb.AgentMessage_Hello{Hello: &meshpb.Hello{Node: claim, Capabilities: []string{"e2e-probe"}}}}
	if err := stream.Send(hello); err != nil {
		_, err = stream.Recv()
		return status.Code(err), nil
	}
	msg, err := stream.Recv()
	if err != nil {
		if strings.Contains(err.Error(), "not leader") {
			return codes.Unavailable, nil
		}
		return status.Code(err), nil
	}
	if msg.GetSync() == nil {
		return codes.Unknown, fmt.Errorf("first message was not a SyncState: %v", msg)
	}
	return codes.OK, nil
}
