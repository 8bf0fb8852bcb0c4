// Package kubectlvpblu is the library behind the kubectl plugin
// (`kubectl vpblu status|graph|verify|rotate`) and meshtop (SPEC §15).
// What they show comes from ctrl/meshview; this package adds asking for a
// rotation and following it, the live redraw, and the client set-up.
package kubectlvpblu
