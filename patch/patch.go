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

// Operation is one RFC 6902 operation. We only ever emit "add".
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// Style is how the long-running agent is attached to the pod.
type Style string

const (
	// StyleNative is an init container with restartPolicy Always (Kubernetes ≥ 1.29): it starts
	// before the app, gates it with a startupProbe, and does not keep Jobs alive.
	StyleNative Style = "native"
	// StyleClassic is an init container that renders once plus a regular sidecar container.
	StyleClassic Style = "classic"
)

// Names of everything we add. The status annotation and these names make injection
// recognisable, so a second admission adds nothing.
const (
	AgentContainer  = "vault-injector-agent"
	InitContainer   = "vault-injector-init"
	SecretsVolume   = "vault-injector-secrets"
	HomeVolume      = "vault-injector-home"
	TokenVolume     = "vault-injector-token"
	ConfigVolume    = "vault-injector-config"
	TemplatesVolume = "vault-injector-templates"
	CAVolume        = "vault-injector-ca"
	// BinaryPath is the agent's own binary in the image (cmd/vault-injector-agent): the agent
	// face without the webhook's libraries, so it starts in half the time.
	BinaryPath       = "/vault-injector-agent"
	defaultUID       = 65532
	startupThreshold = 600 // one probe per second: ten minutes to log in and render
)

// Memory volumes count against the pod's memory, so they are capped: rendered secrets are
// small, and the home volume holds only a token and a marker.
var (
	secretsVolumeSize = resource.MustParse("16Mi")
	homeVolumeSize    = resource.MustParse("1Mi")
)

// Settings are the operator's choices (webhook flags), the same for every pod.
type Settings struct {
	AgentImage      string
	ImagePullPolicy corev1.PullPolicy
	Style           Style
	// EnvStyle is how app containers get env variables unless a pod says: file or exec (the
	// webhook resolves its "auto" before building).
	EnvStyle agentconfig.EnvStyle
	// TokenAudience is the audience of the projected service-account token; empty means the
	// API server's default audiences.
	TokenAudience          string
	TokenExpirationSeconds int64
	Resources              corev1.ResourceRequirements
	// RunAsUser is the UID (and GID) of our containers; 0 means 65532.
	RunAsUser int64
	// PlatformUID leaves runAsUser and runAsGroup of our containers unset (RunAsUser is then
	// ignored), so the pod's securityContext, else the platform, else the image's USER decides.
	// OpenShift's restricted-v2 SCC refuses a UID outside the namespace's range and assigns one
	// UID to every container of the pod that names none, so the app can read our files.
	PlatformUID bool
}

// AgentUID is the user our containers run as: RunAsUser, or 65532 when RunAsUser is 0. known
// is false with PlatformUID: the webhook sets no UID, so it cannot tell.
func (s Settings) AgentUID() (uid int64, known bool) {
	switch {
	case s.PlatformUID:
		return 0, false
	case s.RunAsUser == 0:
		return defaultUID, true
	}
	return s.RunAsUser, true
}

// StatusVersion is the version of the status annotation's format. It is the status's own:
// it did not follow the agent config's version 2, which changed nothing here.
const StatusVersion = 1

// Status is the value of the status annotation: what we injected.
type Status struct {
	Version        int      `json:"version"`
	Style          Style    `json:"style"`
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes"`
	AppContainers  []string `json:"appContainers"`
	// EnvStyle is how the app containers get env variables, when they get any.
	EnvStyle agentconfig.EnvStyle `json:"envStyle,omitempty"`
}

// AlreadyInjected reports whether the pod carries our status annotation or one of our
// containers, so re-admission (reinvocationPolicy: IfNeeded) never injects twice.
func AlreadyInjected(p *Pod) bool {
	if _, ok := p.Annotations()[agentconfig.AnnotationStatus]; ok {
		return true
	}
	if p.Spec == nil {
		return false
	}
	for _, list := range [][]Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range list {
			if c.Name == AgentContainer || c.Name == InitContainer {
				return true
			}
		}
	}
	return false
}

// Build returns the operations that inject req into p. Errors are conflicts with what the pod
// already has; their text is fit for a denial message.
func Build(p *Pod, req *agentconfig.Request, s Settings) ([]Operation, error) {
	return NewBuilder(s).Build(p, req)
}

// Build is the package-level Build with this Builder's settings.
func (B *Builder) Build(p *Pod, req *agentconfig.Request) ([]Operation, error) {
	s := B.settings
	if p.Spec == nil || len(p.Spec.Containers) == 0 {
		return nil, fmt.Errorf("pod has no containers to inject into")
	}
	apps, err := selectContainers(p.Spec.Containers, req.Containers)
	if err != nil {
		return nil, err
	}
	if err := checkConflicts(p, apps, req.SecretsPath); err != nil {
		return nil, err
	}
	b := podBuild{pod: p, settings: s, req: req}
	if err := b.checkEnv(apps); err != nil {
		return nil, err
	}
	cfgJSON := req.AgentJSON
	if cfgJSON == nil {
		if cfgJSON, err = req.Agent.Marshal(); err != nil {
			return nil, fmt.Errorf("encode agent config: %w", err)
		}
	}
	res, err := resources(s.Resources, req.Resources)
	if err != nil {
		return nil, err
	}

	b.res, b.env = res, appEnv(p.Spec.Containers, apps)
	var ops []Operation

	// Annotations. The agent config travels as an annotation projected into our containers by
	// the downward API, not as an env var: env vars and args share the kernel's 128 KiB limit
	// per string (MAX_ARG_STRLEN), which vault-k8s's base64 env config hits with many templates,
	// while annotations may total 256 KiB and the file is read only by our containers.
	status := b.status(apps)
	statusJSON := appendStatus(make([]byte, 0, 256), &status)
	ops = append(ops, addAnnotations(p, map[string]string{
		agentconfig.AnnotationStatus:      string(statusJSON),
		agentconfig.AnnotationAgentConfig: string(cfgJSON),
	})...)

	// Volumes.
	vols, err := B.encodedVolumes(&b)
	if err != nil {
		return nil, err
	}
	ops = appendAll(ops, "/spec/volumes", p.Spec.Volumes == nil, vols)

	// App mounts: read-only, the agent is the only writer.
	mount, err := B.encoded(memoKey{piece: "mount", secretsPath: req.SecretsPath}, func() any {
		return corev1.VolumeMount{Name: SecretsVolume, MountPath: req.SecretsPath, ReadOnly: true}
	})
	if err != nil {
		return nil, err
	}
	for _, i := range apps {
		ops = appendAll(ops, "/spec/containers/"+strconv.Itoa(i)+"/volumeMounts", p.Spec.Containers[i].VolumeMounts == nil, []any{mount})
		ops = append(ops, b.appEnvOps(i)...)
	}

	// Our init container goes first, so the app's own init containers already see the files.
	native := req.Agent.Mode == agentconfig.ModeSidecar && s.Style == StyleNative
	first, err := b.encodedContainer(B, InitContainer, true, native)
	if native {
		first, err = b.encodedContainer(B, AgentContainer, false, true)
	}
	if err != nil {
		return nil, err
	}
	if p.Spec.InitContainers == nil {
		ops = append(ops, Operation{Op: "add", Path: "/spec/initContainers", Value: []any{first}})
	} else {
		ops = append(ops, Operation{Op: "add", Path: "/spec/initContainers/0", Value: first})
	}
	if req.Agent.Mode == agentconfig.ModeSidecar && s.Style == StyleClassic {
		sidecar, err := b.encodedContainer(B, AgentContainer, false, false)
		if err != nil {
			return nil, err
		}
		ops = append(ops, Operation{Op: "add", Path: "/spec/containers/-", Value: sidecar})
	}
	return ops, nil
}

// podBuild is one pod's build: the pod, the request and what is derived from them once.
type podBuild struct {
	pod      *Pod
	settings Settings
	req      *agentconfig.Request
	res      corev1.ResourceRequirements
	env      envCopy
}

func (b *podBuild) status(apps []int) Status {
	st := Status{Version: StatusVersion, Style: b.settings.Style}
	switch {
	case b.req.Agent.Mode == agentconfig.ModeInit:
		st.Style = "init"
		st.InitContainers = []string{InitContainer}
	case b.settings.Style == StyleNative:
		st.InitContainers = []string{AgentContainer}
	default:
		st.InitContainers = []string{InitContainer}
		st.Containers = []string{AgentContainer}
	}
	st.Volumes = []string{SecretsVolume, HomeVolume, TokenVolume, ConfigVolume}
	if b.req.TemplatesConfigMap != "" {
		st.Volumes = append(st.Volumes, TemplatesVolume)
	}
	if b.req.CAConfigMap != "" {
		st.Volumes = append(st.Volumes, CAVolume)
	}
	for _, v := range b.envVolumes() {
		st.Volumes = append(st.Volumes, v.Name)
	}
	st.EnvStyle = b.envStyle()
	for _, i := range apps {
		st.AppContainers = append(st.AppContainers, b.pod.Spec.Containers[i].Name)
	}
	return st
}

// selectContainers resolves the containers annotation to indices.
func selectContainers(cs []Container, names []string) ([]int, error) {
	if len(names) == 0 {
		idx := make([]int, len(cs))
		for i := range cs {
			idx[i] = i
		}
		return idx, nil
	}
	var idx []int
	for _, n := range names {
		i := slices.IndexFunc(cs, func(c Container) bool { return c.Name == n })
		if i < 0 {
			have := make([]string, len(cs))
			for j, c := range cs {
				have[j] = c.Name
			}
			return nil, fmt.Errorf("annotation %s names container %q, which the pod does not have (it has: %s)",
				agentconfig.AnnotationContainers, n, strings.Join(have, ", "))
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

func checkConflicts(p *Pod, apps []int, secretsPath string) error {
	ours := []string{SecretsVolume, HomeVolume, TokenVolume, ConfigVolume, TemplatesVolume, CAVolume, EnvVolume, ExecVolume}
	for _, v := range p.Spec.Volumes {
		if slices.Contains(ours, v.Name) {
			return fmt.Errorf("pod already has a volume named %q, which the injector reserves", v.Name)
		}
	}
	for _, i := range apps {
		c := p.Spec.Containers[i]
		for _, m := range c.VolumeMounts {
			if strings.TrimRight(m.MountPath, "/") == secretsPath {
				return fmt.Errorf("container %q already mounts %q at %s; choose another directory with annotation %s",
					c.Name, m.Name, secretsPath, agentconfig.AnnotationSecretsPath)
			}
		}
	}
	return nil
}

// addAnnotations adds keys to metadata.annotations, creating the map (or metadata) when absent.
func addAnnotations(p *Pod, kv map[string]string) []Operation {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	switch {
	case p.Metadata == nil:
		return []Operation{{Op: "add", Path: "/metadata", Value: map[string]any{"annotations": kv}}}
	case p.Metadata.Annotations == nil:
		return []Operation{{Op: "add", Path: "/metadata/annotations", Value: kv}}
	}
	ops := make([]Operation, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, Operation{Op: "add", Path: "/metadata/annotations/" + EscapeJSONPointer(k), Value: kv[k]})
	}
	return ops
}

// appendAll adds values to the array at path: as a new array when it is absent, else one
// "append" operation per value, so nothing already there is replaced.
func appendAll(ops []Operation, path string, absent bool, values []any) []Operation {
	if absent {
		return append(ops, Operation{Op: "add", Path: path, Value: values})
	}
	for _, v := range values {
		ops = append(ops, Operation{Op: "add", Path: path + "/-", Value: v})
	}
	return ops
}

// EscapeJSONPointer escapes one reference token (RFC 6901): "~" → "~0", "/" → "~1".
func EscapeJSONPointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return pointerEscaper.Replace(s)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func ptr[T any](v T) *T { return &v }
