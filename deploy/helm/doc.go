// Package helm holds the vpblu Helm chart (the directory vpblu, embedded in
// Chart) and renders it the way `helm template` does: values coalesced over
// values.yaml and validated by values.schema.json, templates rendered by
// Helm's engine, NOTES.txt split out, manifests in Helm's install order.
//
// It exists so tests and tools check exactly what users install. It is not
// an installer: it never talks to an API server, and it neither runs hooks
// (the chart has none) nor tracks releases.
//
// The chart's crds directory is a copy of deploy/crds, kept identical by
// `make generate-api`; a test fails when they differ.
package helm
