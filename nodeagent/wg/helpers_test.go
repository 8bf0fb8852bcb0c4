package wg_test

import (
	"bytes"
	"slices"

	"github.com/lumbrjx/vpblu/nodeagent/wg"
)

func sortPeers(ps []wg.PeerStatus) {
	slices.SortFunc(ps, func(a, b wg.PeerStatus) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
}
