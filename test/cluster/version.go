package cluster

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"
)

// DefaultKubernetesVersion is the release the cluster runs unless KUBERNETES_VERSION names
// another one that test/tools/build.sh has built (KUBERNETES_VERSION=1.30.14 make e2e).
const DefaultKubernetesVersion = "1.37.2"

// VersionEnv names the environment variable that picks the Kubernetes release.
const VersionEnv = "KUBERNETES_VERSION"

// Version is a Kubernetes release (1.30.14).
type Version struct{ Major, Minor, Patch int }

var versionRE = regexp.MustCompile(`^v?(1)\.([0-9]+)\.([0-9]+)$`)

// ParseVersion reads "1.30.14" or "v1.30.14".
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("%q is not a Kubernetes release: expected 1.MINOR.PATCH such as %s", s, DefaultKubernetesVersion)
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	return v, nil
}

// KubernetesVersion is the release the tests run: $KUBERNETES_VERSION, or the default.
func KubernetesVersion() (Version, error) {
	s := os.Getenv(VersionEnv)
	if s == "" {
		s = DefaultKubernetesVersion
	}
	v, err := ParseVersion(s)
	if err != nil {
		return Version{}, fmt.Errorf("%s: %w", VersionEnv, err)
	}
	return v, nil
}

// String is the tag form, as the tools cache names its directories: v1.30.14.
func (v Version) String() string { return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast tells whether the release is 1.minor or newer.
func (v Version) AtLeast(minor int) bool { return v.Major > 1 || v.Minor >= minor }

// Kubelet features the harness configures only where the kubelet has them: a kubelet fails
// on, or warns about and ignores, fields its release does not know.
const (
	// failCgroupV1 exists from 1.31; 1.35+ refuses cgroup v1 (this machine's) without it.
	minorFailCgroupV1 = 31
	// crashLoopBackOff.maxContainerRestartPeriod is on by default (beta) from 1.35.
	minorMaxRestartPeriod = 35
)

// kubeletExtraConfig are the version-dependent lines of the kubelet configuration.
var kubeletExtraConfig = []struct {
	since int
	yaml  string
}{
	{minorFailCgroupV1, "failCgroupV1: false"},
	// Restart crashed containers after 1 s instead of 10 s doubling to 5 min, so tests that kill
	// an agent several times take seconds.
	{minorMaxRestartPeriod, "crashLoopBackOff: {maxContainerRestartPeriod: 1s}"},
}

// RestartDelay is how long this cluster's kubelet waits before restarting a container that
// crashed for the n-th time (n from 1): the first crash is restarted at once (the back-off
// starts with it); then 1 s where the harness caps the back-off, else the kubelet's built-in
// 10 s doubling up to 5 min.
func (v Version) RestartDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	if v.AtLeast(minorMaxRestartPeriod) {
		return time.Second
	}
	d := 10 * time.Second
	for i := 2; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}
