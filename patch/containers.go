package patch

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// DefaultResources are small on purpose: a sidecar runs in every pod.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
}

func (b *podBuild) mounts() []corev1.VolumeMount {
	m := []corev1.VolumeMount{
		{Name: SecretsVolume, MountPath: agentconfig.SecretsDir},
		{Name: HomeVolume, MountPath: agentconfig.HomeDir},
		{Name: TokenVolume, MountPath: strings.TrimSuffix(agentconfig.ServiceAccountTokenFile, "/token"), ReadOnly: true},
		{Name: ConfigVolume, MountPath: agentconfig.ConfigDir, ReadOnly: true},
	}
	if b.req.TemplatesConfigMap != "" {
		m = append(m, corev1.VolumeMount{Name: TemplatesVolume, MountPath: agentconfig.TemplatesDir, ReadOnly: true})
	}
	if b.req.CAConfigMap != "" {
		m = append(m, corev1.VolumeMount{Name: CAVolume, MountPath: agentconfig.CADir, ReadOnly: true})
	}
	return append(m, b.envMounts()...)
}

// container builds our container; once means it renders and exits.
func (b *podBuild) container(name string, once bool) corev1.Container {
	args := []string{"agent", "--config=" + agentconfig.ConfigFile}
	if once {
		args = append(args, "--once")
	}
	if b.needsExecBinary() {
		args = append(args, "--copy-binary-to="+agentconfig.ExecBinary)
	}
	c := corev1.Container{
		Name:                     name,
		Image:                    b.settings.AgentImage,
		ImagePullPolicy:          b.settings.ImagePullPolicy,
		Command:                  []string{BinaryPath},
		Args:                     args,
		Env:                      b.env.env,
		EnvFrom:                  b.env.envFrom,
		Resources:                b.res,
		VolumeMounts:             b.mounts(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	// Unset, runAsNonRoot still makes the kubelet refuse to start our container as root.
	if uid, known := b.settings.AgentUID(); known {
		c.SecurityContext.RunAsUser, c.SecurityContext.RunAsGroup = &uid, &uid
	}
	return c
}

// encodedContainer returns our container's JSON: the memoised encoding of everything but the
// copied environment, with the environment spliced in (member order does not matter in JSON).
func (b *podBuild) encodedContainer(B *Builder, name string, once, native bool) (any, error) {
	key := memoKey{piece: "container", name: name, once: once, native: native,
		templates: b.req.TemplatesConfigMap != "", ca: b.req.CAConfigMap != "", resources: b.req.Resources,
		envStyle: b.envStyle(), execBinary: b.needsExecBinary()}
	base, err := B.encoded(key, func() any {
		c := b.container(name, once)
		if native {
			c = b.nativeSidecar()
		}
		c.Env, c.EnvFrom = nil, nil
		return c
	})
	if err != nil || (len(b.env.env) == 0 && len(b.env.envFrom) == 0) {
		return base, err
	}
	env, ok := appendEnvObject(make([]byte, 0, 512), b.env.env, b.env.envFrom)
	if !ok {
		if env, err = marshalEnvObject(b.env.env, b.env.envFrom); err != nil {
			return nil, err
		}
	}
	return splicedObject{head: env, tail: base}, nil
}

func (b *podBuild) nativeSidecar() corev1.Container {
	c := b.container(AgentContainer, false)
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	c.StartupProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{BinaryPath, "agent", "ready"}}},
		PeriodSeconds:    1,
		TimeoutSeconds:   2,
		FailureThreshold: startupThreshold,
	}
	return c
}

// resources applies per-pod overrides (already validated as quantities) to the defaults.
func resources(def corev1.ResourceRequirements, o agentconfig.Resources) (corev1.ResourceRequirements, error) {
	// Without overrides the defaults are used as they are: copying their maps on every
	// admission showed in the allocation profile, and nothing downstream writes to them.
	r := def
	if o != (agentconfig.Resources{}) {
		r = corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
		for k, v := range def.Requests {
			r.Requests[k] = v
		}
		for k, v := range def.Limits {
			r.Limits[k] = v
		}
	}
	set := []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		val  string
		key  string
	}{
		{r.Requests, corev1.ResourceCPU, o.CPURequest, agentconfig.AnnotationCPURequest},
		{r.Limits, corev1.ResourceCPU, o.CPULimit, agentconfig.AnnotationCPULimit},
		{r.Requests, corev1.ResourceMemory, o.MemoryRequest, agentconfig.AnnotationMemoryRequest},
		{r.Limits, corev1.ResourceMemory, o.MemoryLimit, agentconfig.AnnotationMemoryLimit},
	}
	for _, s := range set {
		if s.val == "" {
			continue
		}
		q, err := resource.ParseQuantity(s.val)
		if err != nil {
			return r, fmt.Errorf("annotation %s=%q: %w", s.key, s.val, err)
		}
		s.list[s.name] = q
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := r.Requests[name]
		lim, hasLim := r.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			return r, fmt.Errorf("agent %s request %s is above its limit %s; set both with the agent-%s-request/-limit annotations",
				name, req.String(), lim.String(), name)
		}
	}
	return r, nil
}

// marshalEnvObject is appendEnvObject by reflection, for the shapes it does not write.
func marshalEnvObject(env []corev1.EnvVar, envFrom []corev1.EnvFromSource) ([]byte, error) {
	return json.Marshal(struct {
		Env     []corev1.EnvVar        `json:"env,omitempty"`
		EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`
	}{env, envFrom})
}
