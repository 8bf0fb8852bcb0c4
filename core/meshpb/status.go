package meshpb

// NotLeader is the message of the Unavailable status with which a standby
// controller ends every stream: the daemon then tries its next address.
// Both ends share it, so a daemon can tell a standby from a failure.
const NotLeader = "not leader"
