package main

import "path"

// BinDir is where the binary sits in every image.
const BinDir = "/usr/local/bin"

// Spec is one image: which binary it holds and how it runs.
type Spec struct {
	// Name names the binary and the image repository.
	Name string
	// Package is the main package, relative to the module root.
	Package string
	// User is the image's uid:gid.
	User string
	// Description is the image's org.opencontainers.image.description.
	Description string
}

// Path is the binary's path in the image, its entrypoint.
func (s Spec) Path() string { return path.Join(BinDir, s.Name) }

// Specs are the images vpblu ships.
var Specs = []Spec{
	{
		Name:    "vpblu-controller",
		Package: "./cmd/vpblu-controller",
		// The controller needs no privilege (distroless's nonroot uid).
		User: "65532:65532",
		// The empty base has no zoneinfo; none is needed, as rotation
		// schedules are UTC and refuse time zones.
		Description: "vpblu controller: desired state, daemon streams, rotation, status",
	},
	{
		Name:    "vpblu-agent",
		Package: "./cmd/vpblu-agent",
		// WireGuard, routing, nftables and eBPF need root on the node.
		User:        "0:0",
		Description: "vpblu node agent: WireGuard, routing, MSS clamping and the eBPF data plane",
	},
}
