package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Version
		wantErr string
	}{
		{in: "1.30.14", want: Version{1, 30, 14}},
		{in: "v1.37.2", want: Version{1, 37, 2}},
		{in: "1.30", wantErr: `"1.30" is not a Kubernetes release: expected 1.MINOR.PATCH`},
		{in: "2.0.0", wantErr: "expected 1.MINOR.PATCH"},
		{in: "1.30.14-rc.0", wantErr: "expected 1.MINOR.PATCH"},
		{in: "", wantErr: "expected 1.MINOR.PATCH"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseVersion(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseVersion(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestKubernetesVersionFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env, want, wantErr string
	}{
		{env: "", want: "v" + DefaultKubernetesVersion},
		{env: "1.30.14", want: "v1.30.14"},
		{env: "1.30", wantErr: "KUBERNETES_VERSION: \"1.30\" is not a Kubernetes release"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(VersionEnv, tc.env)
			v, err := KubernetesVersion()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", v, err, tc.wantErr)
				}
				return
			}
			if err != nil || v.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", v, err, tc.want)
			}
		})
	}
}

// The kubelet of 1.30 has neither failCgroupV1 nor crashLoopBackOff; 1.37 needs the first on
// this cgroup v1 machine and the suite relies on the second.
func TestKubeletConfigPerVersion(t *testing.T) {
	for _, tc := range []struct {
		version      Version
		want, absent []string
		delays       []time.Duration // RestartDelay(1..n)
	}{
		{Version{1, 30, 14}, nil, []string{"failCgroupV1", "crashLoopBackOff"},
			[]time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}},
		{Version{1, 31, 0}, []string{"failCgroupV1: false"}, []string{"crashLoopBackOff"}, []time.Duration{0, 10 * time.Second}},
		{Version{1, 37, 2}, []string{"failCgroupV1: false", "crashLoopBackOff: {maxContainerRestartPeriod: 1s}"}, nil,
			[]time.Duration{0, time.Second, time.Second, time.Second, time.Second}},
	} {
		t.Run(tc.version.String(), func(t *testing.T) {
			cfg := kubeletConfig("/w", "/w/c.sock", tc.version)
			for _, s := range tc.want {
				if !strings.Contains(cfg, s) {
					t.Errorf("config lacks %q:\n%s", s, cfg)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(cfg, s) {
					t.Errorf("config has %q, which kubelet %s does not know:\n%s", s, tc.version, cfg)
				}
			}
			for i, want := range tc.delays {
				if got := tc.version.RestartDelay(i + 1); got != want {
					t.Errorf("RestartDelay(%d) = %s, want %s", i+1, got, want)
				}
			}
		})
	}
}
