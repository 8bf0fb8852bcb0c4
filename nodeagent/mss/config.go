package mss

import (
	"errors"
	"fmt"
	"strings"
)

// Names of what the package owns in nftables.
const (
	TableName = "vpblu"
	ChainName = "mss-clamp"
	// DefaultInterfaces matches wg-mesh and the rotation interface.
	DefaultInterfaces = "wg-*"
	// ChainPriority is nftables' mangle priority.
	ChainPriority = -150
)

// ErrInvalid marks a configuration that can never be applied.
var ErrInvalid = errors.New("invalid mss configuration")

// Config is the desired clamp.
type Config struct {
	// MTU of the tunnel interfaces; 0 removes the clamp and the table.
	MTU int
	// Interfaces is an interface name, or a prefix followed by "*";
	// DefaultInterfaces when empty.
	Interfaces string
}

// Family is the nfproto a rule matches.
type Family string

const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// ForMTU is the MSS that fits a tunnel MTU: MTU − 40 for IPv4 and MTU − 60
// for IPv6 (IP and TCP headers without options).
func ForMTU(mtu int) (v4, v6 int) { return mtu - 40, mtu - 60 }

// Rule is one clamp rule: TCP SYNs of Family leaving through Interfaces
// get an MSS of at most MSS.
type Rule struct {
	Family     Family
	Interfaces string
	MSS        uint16
}

// State is the package's table as it exists: its chain's hook and rules.
type State struct {
	// Hook is "forward" for the chain Set writes; anything else read back
	// makes Set rewrite the table.
	Hook     string
	Priority int
	// Rules in chain order. A rule the package cannot decode is read back
	// with Family "unknown".
	Rules []Rule
}

func (c Config) withDefaults() Config {
	if c.Interfaces == "" {
		c.Interfaces = DefaultInterfaces
	}
	return c
}

// Validate reports why c can never be applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.MTU == 0 {
		return nil
	}
	if _, v6 := ForMTU(c.MTU); c.MTU > 65535 || v6 < 536 {
		return fmt.Errorf("%w: MTU %d", ErrInvalid, c.MTU)
	}
	name := strings.TrimSuffix(c.Interfaces, "*")
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "*/ \x00") {
		return fmt.Errorf("%w: interface pattern %q", ErrInvalid, c.Interfaces)
	}
	return nil
}

// desired is the state Set writes for c (c.MTU > 0).
func desired(c Config) State {
	v4, v6 := ForMTU(c.MTU)
	return State{
		Hook:     "forward",
		Priority: ChainPriority,
		Rules: []Rule{
			{Family: IPv4, Interfaces: c.Interfaces, MSS: uint16(v4)},
			{Family: IPv6, Interfaces: c.Interfaces, MSS: uint16(v6)},
		},
	}
}
