// Package cmd holds the thin main packages of vpblu's binaries. Flags are
// parsed here and nowhere else; everything else lives in a library package.
package cmd
