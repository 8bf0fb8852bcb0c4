package route

import (
	"errors"
	"fmt"
)

// MinMTU is the smallest tunnel MTU Set accepts: IPv6 needs 1280.
const MinMTU = 1280

// ErrMTU: the primary interface's MTU leaves too little for the tunnel.
var ErrMTU = errors.New("tunnel MTU too small")

// TunnelMTU is the WireGuard interface's MTU for a primary MTU: primary −
// overhead, refused below MinMTU.
func TunnelMTU(primary, overhead int) (int, error) {
	mtu := primary - overhead
	if mtu < MinMTU {
		return 0, fmt.Errorf("%w: primary MTU %d − overhead %d = %d < %d", ErrMTU, primary, overhead, mtu, MinMTU)
	}
	return mtu, nil
}
