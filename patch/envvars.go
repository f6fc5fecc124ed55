package patch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// Environment variables from Vault reach the app containers in one of two ways
// (agentconfig.EnvStyle): the kubelet reads them from the agent's env file when the container
// starts (fileKeyRef entries: nothing in the spec but the file's name and key), or the
// container's command is wrapped by `vault-injector exec`, which reads the same file and then
// execs the original command. Neither puts a value into the pod spec or a Secret.

// Volumes of the env feature.
const (
	EnvVolume  = "vault-injector-env"
	ExecVolume = "vault-injector-exec"
)

var (
	envVolumeSize = resource.MustParse("1Mi")
	// execVolumeSize holds a copy of our static binary; it is not secret, so it is a disk
	// emptyDir and does not count against the pod's memory.
	execVolumeSize = resource.MustParse("64Mi")
)

// envStyle is how this pod's app containers get their variables; "" when it asks for none.
func (b *podBuild) envStyle() agentconfig.EnvStyle {
	if b.req.Agent.Env == nil {
		return ""
	}
	if b.req.EnvStyle != "" {
		return b.req.EnvStyle
	}
	if b.settings.EnvStyle == agentconfig.EnvStyleExec {
		return agentconfig.EnvStyleExec
	}
	return agentconfig.EnvStyleFile
}

// checkEnv denies what the env variables cannot work with: a name the container defines
// itself (which of the two would win depends on the mechanism), a container without a command
// to wrap, a mount path of ours that the container uses already, a liveness probe in the way
// of restart-on-change.
func (b *podBuild) checkEnv(apps []int) error {
	env := b.req.Agent.Env
	if env == nil {
		return nil
	}
	style := b.envStyle()
	for _, i := range apps {
		c := b.pod.Spec.Containers[i]
		for _, v := range env.Vars {
			if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == v.Name }) {
				return fmt.Errorf("container %q already defines environment variable %s, which annotation %s%s would set too: remove one of them",
					c.Name, v.Name, agentconfig.Prefix, "env-"+v.Name)
			}
		}
		if style == agentconfig.EnvStyleExec {
			if len(c.Command) == 0 {
				return fmt.Errorf("container %q has no command in the pod spec, and env style exec runs the container's command under %s exec; "+
					"the injector never asks an image registry for an image's entrypoint: set command (and args) to what the image runs, "+
					"or use %s: file on Kubernetes ≥ 1.35", c.Name, agentconfig.ExecBinary, agentconfig.AnnotationEnvStyle)
			}
			for _, m := range c.VolumeMounts {
				p := strings.TrimRight(m.MountPath, "/")
				if p == agentconfig.EnvDir || p == agentconfig.ExecDir {
					return fmt.Errorf("container %q already mounts %q at %s, which env style exec needs", c.Name, m.Name, p)
				}
			}
		}
		if env.Versioned && style == agentconfig.EnvStyleExec && b.pod.Spec.ShareProcessNamespace != nil && *b.pod.Spec.ShareProcessNamespace {
			// The check reads the wrapped command's environment as PID 1 of the container.
			return fmt.Errorf("%s: restart with env style exec needs each container's own process namespace, and the pod sets shareProcessNamespace: use %s: file (Kubernetes ≥ 1.35)",
				agentconfig.AnnotationEnvOnChange, agentconfig.AnnotationEnvStyle)
		}
		if env.Versioned && c.HasLivenessProbe() {
			return fmt.Errorf("container %q has a livenessProbe, and %s: restart needs to add its own: remove the probe or use %s: none",
				c.Name, agentconfig.AnnotationEnvOnChange, agentconfig.AnnotationEnvOnChange)
		}
	}
	return nil
}

// envVolumes are the env feature's volumes for this pod.
func (b *podBuild) envVolumes() []corev1.Volume {
	style := b.envStyle()
	if style == "" {
		return nil
	}
	vols := []corev1.Volume{{Name: EnvVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: &envVolumeSize}}}}
	if b.needsExecBinary() {
		vols = append(vols, corev1.Volume{Name: ExecVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			SizeLimit: &execVolumeSize}}})
	}
	return vols
}

// needsExecBinary: app containers run our binary, to wrap the command or to check whether
// their environment is current.
func (b *podBuild) needsExecBinary() bool {
	env := b.req.Agent.Env
	return env != nil && (b.envStyle() == agentconfig.EnvStyleExec || env.Versioned)
}

// envMounts are our own containers' mounts of the env feature: the agent writes both.
func (b *podBuild) envMounts() []corev1.VolumeMount {
	if b.envStyle() == "" {
		return nil
	}
	m := []corev1.VolumeMount{{Name: EnvVolume, MountPath: agentconfig.EnvDir}}
	if b.needsExecBinary() {
		m = append(m, corev1.VolumeMount{Name: ExecVolume, MountPath: agentconfig.ExecDir})
	}
	return m
}

// appEnvOps are the operations on app container i for the env variables.
func (b *podBuild) appEnvOps(i int) []Operation {
	env := b.req.Agent.Env
	if env == nil {
		return nil
	}
	c := b.pod.Spec.Containers[i]
	base := "/spec/containers/" + strconv.Itoa(i)
	var ops []Operation
	switch b.envStyle() {
	case agentconfig.EnvStyleFile:
		vars := make([]any, 0, len(env.Vars)+1)
		for _, v := range env.Vars {
			vars = append(vars, fileKeyRef(v.Name))
		}
		if env.Versioned {
			vars = append(vars, fileKeyRef(agentconfig.EnvVersionVar))
		}
		ops = appendAll(ops, base+"/env", c.Env == nil, vars)
		if env.Versioned {
			ops = appendAll(ops, base+"/volumeMounts", false, []any{
				corev1.VolumeMount{Name: EnvVolume, MountPath: agentconfig.EnvDir, ReadOnly: true},
				corev1.VolumeMount{Name: ExecVolume, MountPath: agentconfig.ExecDir, ReadOnly: true},
			})
		}
	case agentconfig.EnvStyleExec:
		ops = appendAll(ops, base+"/volumeMounts", false, []any{
			corev1.VolumeMount{Name: EnvVolume, MountPath: agentconfig.EnvDir, ReadOnly: true},
			corev1.VolumeMount{Name: ExecVolume, MountPath: agentconfig.ExecDir, ReadOnly: true},
		})
		// The one operation that changes what the user wrote, which is what the exec style is.
		cmd := append([]string{agentconfig.ExecBinary, "exec", "--env-file=" + agentconfig.EnvFile, "--"}, c.Command...)
		ops = append(ops, Operation{Op: "replace", Path: base + "/command", Value: cmd})
	}
	if env.Versioned {
		ops = append(ops, Operation{Op: "add", Path: base + "/livenessProbe", Value: restartProbe()})
	}
	return ops
}

func fileKeyRef(name string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{
		VolumeName: EnvVolume, Path: agentconfig.EnvFileName, Key: name}}}
}

// restartProbe fails once the env file holds another version than the one the container
// started with, so the kubelet restarts the container, which then reads the new values.
func restartProbe() *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
			agentconfig.ExecBinary, "exec", "--check", "--env-file=" + agentconfig.EnvFile}}},
		PeriodSeconds:    5,
		TimeoutSeconds:   5,
		FailureThreshold: 1,
	}
}
