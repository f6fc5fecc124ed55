// Package patch builds the RFC 6902 JSON patch that injects the agent into a pod. It is pure:
// (pod view, request, operator settings) in, operations out; no I/O, no clock.
//
// The patch only adds. It is computed from a narrow view of the pod (Pod) rather than from a
// round-tripped corev1.Pod, so fields this build of k8s.io/api does not know are never touched,
// and decoding an admission request stays cheap.
package patch

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Pod is the part of a pod the patch needs. Slices and maps that are nil were absent (or null)
// in the original JSON, which decides between "add the whole array" and "append to it".
type Pod struct {
	Metadata *Metadata `json:"metadata"`
	Spec     *Spec     `json:"spec"`
}

// Metadata is the part of ObjectMeta we read.
type Metadata struct {
	Name         string            `json:"name"`
	GenerateName string            `json:"generateName"`
	Namespace    string            `json:"namespace"`
	Annotations  map[string]string `json:"annotations"`
	// OwnerReferences tell a Job's pods apart (for warnings).
	OwnerReferences []OwnerReference `json:"ownerReferences"`
}

// OwnerReference is the part of an owner reference we read.
type OwnerReference struct {
	Kind string `json:"kind"`
}

// Spec is the part of PodSpec we read.
type Spec struct {
	Containers         []Container `json:"containers"`
	InitContainers     []Container `json:"initContainers"`
	Volumes            []Volume    `json:"volumes"`
	ServiceAccountName string      `json:"serviceAccountName"`
	// ShareProcessNamespace decides whether the agent can signal the app (for warnings).
	ShareProcessNamespace *bool `json:"shareProcessNamespace"`
}

// Container is the part of a container we read: its name, what it mounts, and the
// environment the templates get to see.
type Container struct {
	Name          string                 `json:"name"`
	Env           []corev1.EnvVar        `json:"env"`
	EnvFrom       []corev1.EnvFromSource `json:"envFrom"`
	VolumeMounts  []VolumeMount          `json:"volumeMounts"`
	RestartPolicy *string                `json:"restartPolicy"`
	// Command is what the exec env style wraps; nil when the image's entrypoint runs.
	Command []string `json:"command"`
	// LivenessProbe is only looked at for being there (env-on-change restart adds one).
	LivenessProbe *struct{} `json:"livenessProbe"`
}

// HasLivenessProbe reports whether the container has a liveness probe.
func (c Container) HasLivenessProbe() bool { return c.LivenessProbe != nil }

// VolumeMount is the part of a volume mount we read.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

// Volume is the part of a volume we read.
type Volume struct {
	Name string `json:"name"`
}

// Decode reads the pod view from raw pod JSON. Unknown fields are ignored, never dropped:
// the patch is applied to the original bytes.
func Decode(raw []byte) (*Pod, error) {
	var p Pod
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	return &p, nil
}

// OwnedBy reports whether an owner of the pod has the given kind.
func (p *Pod) OwnedBy(kind string) bool {
	if p.Metadata == nil {
		return false
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

// Annotations returns the pod's annotations, or nil.
func (p *Pod) Annotations() map[string]string {
	if p.Metadata == nil {
		return nil
	}
	return p.Metadata.Annotations
}

// DisplayName names the pod in messages: its name, or its generateName followed by "*" for
// pods that controllers create.
func (p *Pod) DisplayName() string {
	switch {
	case p.Metadata == nil:
		return ""
	case p.Metadata.Name != "":
		return p.Metadata.Name
	case p.Metadata.GenerateName != "":
		return p.Metadata.GenerateName + "*"
	}
	return ""
}
