package stream_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lumbrjx/vpblu/core/meshpb"
)

// pki is a throwaway CA with a serving certificate for 127.0.0.1.
type pki struct {
	caFile string
	cert   tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vpblu test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vpblu-controller"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"vpblu-controller"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return pki{caFile: caFile, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// session is what the fake controller saw on one stream.
type session struct {
	token string
	hello *meshpb.Hello
	acks  []*meshpb.Ack
	stats []*meshpb.TunnelStatus
	keys  []*meshpb.KeyReport
	rots  []*meshpb.RotationReport
	// order names the reports in the order they arrived: "key" or
	// "rotation".
	order []string
}

// fakeController is an in-process controller on loopback. Each stream
// runs script, which may send commands and read the daemon's messages.
type fakeController struct {
	meshpb.UnimplementedMeshServer
	addr string
	// notLeader makes every stream end at once, as a standby's does.
	notLeader bool
	// refused counts the streams ended as a standby.
	refused int

	mu       sync.Mutex
	sessions []*session
	script   func(s *serverStream) error
	got      chan struct{} // signalled on every message received
}

type serverStream struct {
	meshpb.Mesh_ConnectServer
	fc   *fakeController
	sess *session
}

// recv reads one daemon message into the session.
func (s *serverStream) recv() (*meshpb.AgentMessage, error) {
	m, err := s.Recv()
	if err != nil {
		return nil, err
	}
	s.fc.mu.Lock()
	switch x := m.Msg.(type) {
	case *meshpb.AgentMessage_Ack:
		s.sess.acks = append(s.sess.acks, x.Ack)
	case *meshpb.AgentMessage_Status:
		s.sess.stats = append(s.sess.stats, x.Status)
	case *meshpb.AgentMessage_KeyReport:
		s.sess.keys = append(s.sess.keys, x.KeyReport)
		s.sess.order = append(s.sess.order, "key")
	case *meshpb.AgentMessage_Rotation:
		s.sess.rots = append(s.sess.rots, x.Rotation)
		s.sess.order = append(s.sess.order, "rotation")
	case *meshpb.AgentMessage_Hello:
		s.sess.hello = x.Hello
	}
	s.fc.mu.Unlock()
	select {
	case s.fc.got <- struct{}{}:
	default:
	}
	return m, nil
}

// waitAck reads until the next ack.
func (s *serverStream) waitAck() (*meshpb.Ack, error) {
	for {
		m, err := s.recv()
		if err != nil {
			return nil, err
		}
		if a := m.GetAck(); a != nil {
			return a, nil
		}
	}
}

// drain reads until the daemon goes away.
func (s *serverStream) drain() error {
	for {
		if _, err := s.recv(); err != nil {
			return nil
		}
	}
}

func (fc *fakeController) Connect(st grpc.BidiStreamingServer[meshpb.AgentMessage, meshpb.ControllerMessage]) error {
	fc.mu.Lock()
	standby := fc.notLeader
	if standby {
		fc.refused++
	}
	fc.mu.Unlock()
	if standby {
		return status.Error(codes.Unavailable, meshpb.NotLeader)
	}
	sess := &session{}
	if md, ok := metadata.FromIncomingContext(st.Context()); ok && len(md.Get("authorization")) > 0 {
		sess.token = md.Get("authorization")[0]
	}
	fc.mu.Lock()
	fc.sessions = append(fc.sessions, sess)
	script := fc.script
	fc.mu.Unlock()
	s := &serverStream{Mesh_ConnectServer: st, fc: fc, sess: sess}
	m, err := s.recv()
	if err != nil {
		return err
	}
	if m.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "first message is not hello")
	}
	return script(s)
}

func (fc *fakeController) setScript(f func(s *serverStream) error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.script = f
}

func (fc *fakeController) snapshot() []session {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	out := make([]session, len(fc.sessions))
	for i, s := range fc.sessions {
		out[i] = *s
	}
	return out
}

// waitFor polls cond until it holds or the test's patience ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// lead makes fc the leader: it serves every stream with a SyncState,
// then reads until the daemon goes away.
func (fc *fakeController) lead() {
	fc.mu.Lock()
	fc.notLeader = false
	fc.mu.Unlock()
	fc.setScript(func(s *serverStream) error {
		if err := s.Send(syncMsg(1)); err != nil {
			return err
		}
		return s.drain()
	})
}

// standbyRefusals is how many streams fc ended as a standby.
func (fc *fakeController) standbyRefusals() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.refused
}

func startController(t *testing.T, p pki, notLeader bool) *fakeController {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeController{addr: lis.Addr().String(), notLeader: notLeader, got: make(chan struct{}, 1),
		script: func(s *serverStream) error { return s.drain() }}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.cert}, MinVersion: tls.VersionTLS13})),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	meshpb.RegisterMeshServer(srv, fc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return fc
}

func syncMsg(gen uint64) *meshpb.ControllerMessage {
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: gen},
		Cmd: &meshpb.ControllerMessage_Sync{Sync: &meshpb.SyncState{Config: &meshpb.NodeConfig{ListenPort: 51820}}}}
}

func delta(base, gen uint64) *meshpb.ControllerMessage {
	return &meshpb.ControllerMessage{Generation: &meshpb.Generation{Epoch: 1, Seq: gen},
		Cmd: &meshpb.ControllerMessage_Delta{Delta: &meshpb.Delta{Base: &meshpb.Generation{Epoch: 1, Seq: base}}}}
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	// Like kubelet: write a new file and rename it into place.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
