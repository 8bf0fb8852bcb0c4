// Command images builds the vpblu container images without a Docker
// daemon: each is one static Go binary (CGO_ENABLED=0) in a single layer on
// an empty base, with no shell and nothing else.
//
//	go run ./tools/images --out bin/images [--tag 0.1.0] [--platforms linux/amd64,linux/arm64]
//
// For every image it writes
//
//	<out>/<name>.tar  a docker-archive tarball of the first platform, tagged
//	                  <registry>/<name>:<tag>, for `docker load` and
//	                  `kind load image-archive`
//	<out>/<name>/     an OCI image layout holding an index of every platform,
//	                  annotated with the tag, for `crane push` or
//	                  `skopeo copy oci:<out>/<name>:<tag> docker://...`
//
// The tag defaults to the Helm chart's appVersion, so the chart's default
// images are these. Images are reproducible: file times and the creation
// time are SOURCE_DATE_EPOCH (default 0).
//
// It is not a general image builder and does not push.
package main
