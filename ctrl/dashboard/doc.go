// Package dashboard is the controller's web dashboard (SPEC §15, §14):
// nodes, tunnels with their handshakes, rotations and drops, refreshed
// live in the browser. It is read-only: nothing it serves changes the
// cluster.
//
// Access needs a login. The password is checked against a bcrypt hash
// (from a Secret the chart creates; the controller never sees the
// password). A session is a random token in an HttpOnly, SameSite=Strict
// cookie, kept in memory (a restarted controller asks again). Login
// attempts are rate-limited per client address and in total.
package dashboard
