// Package auth decides who a daemon is: it checks the projected
// ServiceAccount token a daemon presents with the TokenReview API (audience
// vpblu.io/agent) and reads the node the token is bound to from the
// pod-binding claims the API server returns. A daemon may only speak for
// that node.
//
// It is not transport security (ctrl/certs) and keeps no state: every
// stream is reviewed when it opens.
package auth
