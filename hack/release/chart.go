package main

import (
	"fmt"
	"os/exec"
)

// packageChart runs `helm package`, with the chart's and the app's version set to the
// release's, so the chart deploys the image this release carries by default.
func packageChart(o options) error {
	cmd := exec.Command(o.helm, "package", o.chart, "--version", o.version, "--app-version", o.version, "--destination", o.out)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm package %s: %w\n%s", o.chart, err, out)
	}
	return nil
}
