package patch

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func TestAppendStatusIsJSONMarshal(t *testing.T) {
	for _, st := range []Status{
		{},
		{Version: StatusVersion, Style: StyleNative, InitContainers: []string{AgentContainer}, Volumes: []string{SecretsVolume, HomeVolume}, AppContainers: []string{"app"}},
		{Version: 7, Style: "init", InitContainers: []string{InitContainer}, Containers: []string{AgentContainer}, Volumes: []string{}, AppContainers: []string{"a\"<b>", "ünï\u2028"}, EnvStyle: agentconfig.EnvStyleExec},
		{Containers: []string{}},
	} {
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendStatus([]byte("x"), &st); string(got) != "x"+string(want) {
			t.Errorf("appendStatus(%+v)\n got %s\nwant x%s", st, got, want)
		}
	}
}

func TestAppendEnvObjectIsJSONMarshal(t *testing.T) {
	yes, no := true, false
	field := func(path, version string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path, APIVersion: version}}
	}
	cmKey := func(name, key string, opt *bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: opt}}
	}
	cmFrom := func(prefix, name string, opt *bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: opt}}
	}
	for _, tc := range []struct {
		name    string
		env     []corev1.EnvVar
		envFrom []corev1.EnvFromSource
		written bool // by hand, else handed to json.Marshal
	}{
		{"none", nil, nil, true},
		{"values", []corev1.EnvVar{{Name: "VI_APP_A", Value: "x \"$(B)\" <&>"}, {Name: "VI_APP_EMPTY"}}, nil, true},
		{"field refs", []corev1.EnvVar{{Name: "P", ValueFrom: field("metadata.name", "")}, {Name: "Q", ValueFrom: field("status.podIP", "v1")}}, nil, true},
		{"configmap keys", []corev1.EnvVar{{Name: "C", ValueFrom: cmKey("cm", "k", nil)}, {Name: "D", ValueFrom: cmKey("", "", &yes)}, {Name: "E", ValueFrom: cmKey("cm", "", &no)}}, nil, true},
		{"envFrom", nil, []corev1.EnvFromSource{cmFrom("VI_APP_", "cm", nil), cmFrom("", "", &yes), cmFrom("VI_APP_X_", "other", &no)}, true},
		{"both", []corev1.EnvVar{{Name: "A", Value: "1"}}, []corev1.EnvFromSource{cmFrom("VI_APP_", "cm", nil)}, true},
		{"value and source", []corev1.EnvVar{{Name: "A", Value: "1", ValueFrom: field("metadata.name", "")}}, nil, true},
		{"empty source", []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{}}}, nil, false},
		{"two sources", []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}, ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "k"}}}}, nil, false},
		{"file key", []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "F", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{VolumeName: "v", Path: "p", Key: "k"}}}}, nil, false},
		{"secret envFrom", nil, []corev1.EnvFromSource{cmFrom("", "cm", nil), {SecretRef: &corev1.SecretEnvSource{}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := marshalEnvObject(tc.env, tc.envFrom)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendEnvObject([]byte("x"), tc.env, tc.envFrom)
			if ok != tc.written {
				t.Fatalf("written by hand: %v, want %v", ok, tc.written)
			}
			if !ok {
				if string(got) != "x" {
					t.Fatalf("declined but appended: %s", got)
				}
				return
			}
			if string(got) != "x"+string(want) {
				t.Fatalf("\n got %s\nwant x%s", got, want)
			}
		})
	}
}
