package mss

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// NFTables is the real Kernel: nf_tables through github.com/google/nftables,
// in the network namespace of the calling thread (a netlink socket is
// opened per call).
type NFTables struct{}

var _ Kernel = NFTables{}

const comment = "vpblu: clamp TCP MSS to the tunnel MTU"

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// Read implements Kernel.
func (NFTables) Read() (State, bool, error) {
	c, err := nftables.New()
	if err != nil {
		return State{}, false, fmt.Errorf("opening nftables: %w", err)
	}
	t, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("listing table: %w", err)
	}
	s := State{}
	ch, err := c.ListChain(t, ChainName)
	if errors.Is(err, unix.ENOENT) {
		return s, true, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("listing chain: %w", err)
	}
	if ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookForward && ch.Type == nftables.ChainTypeFilter {
		s.Hook = "forward"
	} else {
		s.Hook = "other"
	}
	if ch.Priority != nil {
		s.Priority = int(*ch.Priority)
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return State{}, false, fmt.Errorf("listing rules: %w", err)
	}
	for _, r := range rules {
		s.Rules = append(s.Rules, decode(r.Exprs))
	}
	return s, true, nil
}

// Write implements Kernel. The table is added (a no-op when it exists),
// deleted and built anew within one transaction, so the kernel switches
// from the old rules to the new ones atomically.
func (NFTables) Write(s State) error {
	if s.Hook != "forward" {
		return fmt.Errorf("%w: hook %q", ErrInvalid, s.Hook)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	c.AddTable(table())
	c.DelTable(table())
	t := c.AddTable(table())
	prio := nftables.ChainPriority(s.Priority)
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     ChainName,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: &prio,
		Policy:   &policy,
	})
	for _, r := range s.Rules {
		ex, err := encode(r)
		if err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{
			Table:    t,
			Chain:    ch,
			Exprs:    ex,
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables transaction: %w", err)
	}
	return nil
}

// Delete implements Kernel.
func (NFTables) Delete() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	c.AddTable(table())
	c.DelTable(table())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables transaction: %w", err)
	}
	return nil
}

const (
	tcpFlagsOffset = 13
	tcpSYN         = 0x02
	tcpRST         = 0x04
	tcpoptMaxseg   = 2
)

// ifnameMatch is what nft compares oifname with: a prefix pattern ("wg-*")
// compares its bytes only; an exact name includes the terminating NUL.
func ifnameMatch(pattern string) []byte {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return []byte(p)
	}
	return append([]byte(pattern), 0)
}

func ifnamePattern(data []byte) string {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return string(data[:i])
	}
	return string(data) + "*"
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// encode builds the rule nft would build for
//
//	oifname PATTERN meta nfproto FAMILY tcp flags syn / syn,rst
//	tcp option maxseg size > MSS tcp option maxseg size set MSS
func encode(r Rule) ([]expr.Any, error) {
	var proto byte
	switch r.Family {
	case IPv4:
		proto = unix.NFPROTO_IPV4
	case IPv6:
		proto = unix.NFPROTO_IPV6
	default:
		return nil, fmt.Errorf("%w: family %q", ErrInvalid, r.Family)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameMatch(r.Interfaces)},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN | tcpRST}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSYN}},
		&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: tcpoptMaxseg, Offset: 2, Len: 2, DestRegister: 1},
		&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: be16(r.MSS)},
		&expr.Immediate{Register: 1, Data: be16(r.MSS)},
		&expr.Exthdr{Op: expr.ExthdrOpTcpopt, Type: tcpoptMaxseg, Offset: 2, Len: 2, SourceRegister: 1},
	}, nil
}

// decode recognizes a rule encode built; anything else comes back with
// Family "unknown".
func decode(ex []expr.Any) Rule {
	unknown := Rule{Family: "unknown"}
	if len(ex) != 13 {
		return unknown
	}
	m0, ok0 := ex[0].(*expr.Meta)
	c1, ok1 := ex[1].(*expr.Cmp)
	m2, ok2 := ex[2].(*expr.Meta)
	c3, ok3 := ex[3].(*expr.Cmp)
	m4, ok4 := ex[4].(*expr.Meta)
	c5, ok5 := ex[5].(*expr.Cmp)
	p6, ok6 := ex[6].(*expr.Payload)
	b7, ok7 := ex[7].(*expr.Bitwise)
	c8, ok8 := ex[8].(*expr.Cmp)
	e9, ok9 := ex[9].(*expr.Exthdr)
	c10, ok10 := ex[10].(*expr.Cmp)
	i11, ok11 := ex[11].(*expr.Immediate)
	e12, ok12 := ex[12].(*expr.Exthdr)
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9 && ok10 && ok11 && ok12) {
		return unknown
	}
	if m0.Key != expr.MetaKeyOIFNAME || c1.Op != expr.CmpOpEq ||
		m2.Key != expr.MetaKeyNFPROTO || c3.Op != expr.CmpOpEq || len(c3.Data) != 1 ||
		m4.Key != expr.MetaKeyL4PROTO || !bytes.Equal(c5.Data, []byte{unix.IPPROTO_TCP}) ||
		p6.Base != expr.PayloadBaseTransportHeader || p6.Offset != tcpFlagsOffset || p6.Len != 1 ||
		!bytes.Equal(b7.Mask, []byte{tcpSYN | tcpRST}) || !bytes.Equal(c8.Data, []byte{tcpSYN}) ||
		e9.Op != expr.ExthdrOpTcpopt || e9.Type != tcpoptMaxseg || e9.Offset != 2 || e9.Len != 2 ||
		c10.Op != expr.CmpOpGt || len(c10.Data) != 2 || len(i11.Data) != 2 ||
		e12.Op != expr.ExthdrOpTcpopt || e12.Type != tcpoptMaxseg || e12.Offset != 2 || e12.Len != 2 || e12.SourceRegister == 0 {
		return unknown
	}
	r := Rule{Interfaces: ifnamePattern(c1.Data), MSS: binary.BigEndian.Uint16(i11.Data)}
	switch c3.Data[0] {
	case unix.NFPROTO_IPV4:
		r.Family = IPv4
	case unix.NFPROTO_IPV6:
		r.Family = IPv6
	default:
		return unknown
	}
	if binary.BigEndian.Uint16(c10.Data) != r.MSS {
		return unknown
	}
	return r
}
