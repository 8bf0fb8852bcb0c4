package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lumbrjx/vpblu/ctrl/auth"
	"github.com/lumbrjx/vpblu/ctrl/auth/authtest"
)

func TestReviewerAgainstRealAPIServer(t *testing.T) {
	env, key := authtest.StartAPIServer(t)
	ctx := context.Background()
	for _, n := range []string{"node-a", "node-gone"} {
		if err := env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	agents, err := authtest.NewMinter(ctx, env.Config, "vpblu-system", "vpblu-agent")
	if err != nil {
		t.Fatal(err)
	}
	workloads, err := authtest.NewMinter(ctx, env.Config, "default", "workload")
	if err != nil {
		t.Fatal(err)
	}
	mint := func(m *authtest.Minter, node, audience string) string {
		t.Helper()
		tok, err := m.Token(ctx, node, audience)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := mint(agents, "node-a", auth.Audience)
	expired, err := key.Expire(valid)
	if err != nil {
		t.Fatal(err)
	}
	resigned, err := key.Resign(valid, func(map[string]any) {})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := authtest.ForgeWithOtherKey(valid)
	if err != nil {
		t.Fatal(err)
	}
	podGone := mint(agents, "node-gone", auth.Audience)
	if err := agents.DeletePod(ctx, "node-gone"); err != nil {
		t.Fatal(err)
	}

	cs := kubernetes.NewForConfigOrDie(env.Config)
	reviewer, err := auth.NewReviewer(auth.Options{
		Reviewer:        cs.AuthenticationV1().TokenReviews(),
		ServiceAccounts: []string{"vpblu-system:vpblu-agent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		token      string
		wantErr    error
		wantReason string
		wantNode   string
	}{
		{name: "a genuine agent token is accepted with its node", token: valid, wantNode: "node-a"},
		{name: "a token re-signed unchanged is accepted (control for the expired case)", token: resigned, wantNode: "node-a"},
		{name: "no token is refused", token: "", wantErr: auth.ErrNoToken, wantReason: "no_token"},
		{name: "garbage is refused", token: "not-a-jwt", wantErr: auth.ErrRejected, wantReason: "rejected"},
		{name: "a token for another audience is refused", token: mint(agents, "node-a", "https://kubernetes.default.svc"), wantErr: auth.ErrRejected, wantReason: "audience"},
		{name: "an expired token is refused", token: expired, wantErr: auth.ErrRejected, wantReason: "expired"},
		{name: "a token signed by another key is refused", token: otherKey, wantErr: auth.ErrRejected, wantReason: "rejected"},
		{name: "a token whose bound pod is gone is refused", token: podGone, wantErr: auth.ErrRejected, wantReason: "rejected"},
		{name: "a workload's token for the agent audience is refused", token: mint(workloads, "node-a", auth.Audience), wantErr: auth.ErrServiceAccount, wantReason: "service_account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := reviewer.Authenticate(ctx, tc.token)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if got := auth.Reason(err); got != tc.wantReason {
					t.Errorf("Reason = %q, want %q (err %v)", got, tc.wantReason, err)
				}
				return
			}
			want := auth.Identity{Node: tc.wantNode, Namespace: "vpblu-system", ServiceAccount: "vpblu-agent", Pod: authtest.PodName(tc.wantNode)}
			if d := cmp.Diff(want, id, cmpIgnoreUIDs); d != "" {
				t.Errorf("identity (-want +got):\n%s", d)
			}
			if id.NodeUID == "" || id.PodUID == "" {
				t.Errorf("identity lacks UIDs: %+v", id)
			}
		})
	}

	t.Run("a daemon may only speak for its token's node", func(t *testing.T) {
		id, err := reviewer.Authenticate(ctx, valid)
		if err != nil {
			t.Fatal(err)
		}
		if err := id.CheckNode("node-a"); err != nil {
			t.Errorf("own node refused: %v", err)
		}
		err = id.CheckNode("node-b")
		if !errors.Is(err, auth.ErrNodeMismatch) || auth.Reason(err) != "node_mismatch" {
			t.Errorf("other node: err = %v, want ErrNodeMismatch", err)
		}
	})
}

var cmpIgnoreUIDs = cmp.Transformer("noUIDs", func(id auth.Identity) auth.Identity {
	id.NodeUID, id.PodUID = "", ""
	return id
})

func TestNewReviewerRefusesMalformedServiceAccounts(t *testing.T) {
	for _, sa := range []string{"agent", ":agent", "ns:", ""} {
		_, err := auth.NewReviewer(auth.Options{Reviewer: fakeReviewer{}, ServiceAccounts: []string{sa}})
		if err == nil {
			t.Errorf("service account %q accepted", sa)
		}
	}
}
