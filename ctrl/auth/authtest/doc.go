// Package authtest mints real daemon tokens for tests: a ServiceAccount, a
// Pod bound to a Node (pods never run: there is no kubelet), and a token
// from the TokenRequest API with the vpblu.io/agent audience, exactly what a
// daemon's projected volume holds. It can also run the API server with a
// signing key the test owns, to forge an expired but otherwise perfect
// token.
//
// It is for tests only; the controller never mints tokens.
package authtest
