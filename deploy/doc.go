// Package deploy holds what is installed into a cluster: the generated CRDs
// (deploy/crds), sample objects (deploy/samples) and the Helm chart. The
// CRDs and samples are embedded so tests and tools install exactly what
// ships.
package deploy

import "embed"

// CRDs are the generated CustomResourceDefinitions, one YAML file each.
//
//go:embed crds/*.yaml
var CRDs embed.FS

// Samples are example objects of every vpblu kind.
//
//go:embed samples/*.yaml
var Samples embed.FS
