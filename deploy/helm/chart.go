package helm

import (
	"embed"
	"fmt"
	"io/fs"
	"path"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// ChartDir is the chart's directory in Chart, and its name.
const ChartDir = "vpblu"

// Chart holds the chart's files, templates and crds included.
//
//go:embed all:vpblu
var Chart embed.FS

// Load parses the embedded chart.
func Load() (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(Chart, ChartDir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := Chart.ReadFile(name)
		if err != nil {
			return err
		}
		rel := name[len(ChartDir)+1:]
		files = append(files, &archive.BufferedFile{Name: path.Clean(rel), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading chart files: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("loading chart: %w", err)
	}
	return c, nil
}
