package patch

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	AgentContainer   = "vault-injector-agent"
	InitContainer    = "vault-injector-init"
	SecretsVolume    = "vault-injector-secrets"
	HomeVolume       = "vault-injector-home"
	TokenVolume      = "vault-injector-token"
	ConfigVolume     = "vault-injector-config"
	TemplatesVolume  = "vault-injector-templates"
	CAVolume         = "vault-injector-ca"
	BinaryPath       = "/vault-injector"
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
	// TokenAudience is the audience of the projected service-account token; empty means the
	// API server's default audiences.
	TokenAudience          string
	TokenExpirationSeconds int64
	Resources              corev1.ResourceRequirements
	// RunAsUser is the UID of our containers.
	RunAsUser int64
}

// DefaultResources are small on purpose: a sidecar runs in every pod.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
}

// Status is the value of the status annotation: what we injected.
type Status struct {
	Version        int      `json:"version"`
	Style          Style    `json:"style"`
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes"`
	AppContainers  []string `json:"appContainers"`
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

// Builder is Build for one set of Settings, memoising the JSON of what does not depend on the
// pod (our containers without their copied environment, our volumes, the app mount), so the
// admission hot path does not re-encode large corev1 structs by reflection every time. The
// memo only changes speed: the operations are the same as a fresh Build's.
type Builder struct {
	settings Settings
	mu       sync.Mutex
	enc      map[string]json.RawMessage
	vols     map[string][]any
}

// memoLimit bounds the memo: keys include per-pod overrides (resources, ConfigMap name).
const memoLimit = 512

// NewBuilder returns a Builder for s.
func NewBuilder(s Settings) *Builder {
	return &Builder{settings: s, enc: map[string]json.RawMessage{}, vols: map[string][]any{}}
}

func (B *Builder) encoded(key string, v func() any) (json.RawMessage, error) {
	B.mu.Lock()
	raw, ok := B.enc[key]
	B.mu.Unlock()
	if ok {
		return raw, nil
	}
	raw, err := json.Marshal(v())
	if err != nil {
		return nil, err
	}
	B.mu.Lock()
	if len(B.enc) < memoLimit {
		B.enc[key] = raw
	}
	B.mu.Unlock()
	return raw, nil
}

// encodedVolumes returns our volumes, each encoded, memoised by the ConfigMaps they name.
func (B *Builder) encodedVolumes(b *builder) ([]any, error) {
	key := b.req.TemplatesConfigMap + "\x00" + b.req.CAConfigMap + "\x00" + b.req.CAKey
	B.mu.Lock()
	vols, ok := B.vols[key]
	B.mu.Unlock()
	if ok {
		return vols, nil
	}
	for _, v := range b.volumes() {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		vols = append(vols, json.RawMessage(raw))
	}
	B.mu.Lock()
	if len(B.vols) < memoLimit {
		B.vols[key] = vols
	}
	B.mu.Unlock()
	return vols, nil
}

// Marshal encodes operations. Pre-encoded values (json.RawMessage, which the builder emits
// for its large pieces) are copied as they are rather than re-validated by encoding/json.
func Marshal(ops []Operation) ([]byte, error) {
	return AppendMarshal(make([]byte, 0, 8192), ops)
}

// AppendMarshal is Marshal appending to buf, so a server can reuse its buffers.
func AppendMarshal(buf []byte, ops []Operation) ([]byte, error) {
	buf = append(buf, '[')
	for i, op := range ops {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"op":`...)
		buf = appendString(buf, op.Op)
		buf = append(buf, `,"path":`...)
		buf = appendString(buf, op.Path)
		buf = append(buf, `,"value":`...)
		switch v := op.Value.(type) {
		case json.RawMessage:
			buf = append(buf, v...)
		case []any:
			buf = append(buf, '[')
			for j, e := range v {
				if j > 0 {
					buf = append(buf, ',')
				}
				var err error
				if buf, err = appendValue(buf, e); err != nil {
					return nil, err
				}
			}
			buf = append(buf, ']')
		default:
			var err error
			if buf, err = appendValue(buf, v); err != nil {
				return nil, err
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, ']'), nil
}

// appendString appends s as a JSON string: directly when it is plain printable ASCII (our
// paths always are), through encoding/json otherwise.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func appendValue(buf []byte, v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return append(buf, raw...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

// Build is the package-level Build with this builder's settings.
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

	b := builder{pod: p, settings: s, req: req, res: res, env: appEnv(p.Spec.Containers, apps)}
	var ops []Operation

	// Annotations. The agent config travels as an annotation projected into our containers by
	// the downward API, not as an env var: env vars and args share the kernel's 128 KiB limit
	// per string (MAX_ARG_STRLEN), which vault-k8s's base64 env config hits with many templates,
	// while annotations may total 256 KiB and the file is read only by our containers.
	status := b.status(apps)
	statusJSON, _ := json.Marshal(status)
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
	mount, err := B.encoded("mount\x00"+req.SecretsPath, func() any {
		return corev1.VolumeMount{Name: SecretsVolume, MountPath: req.SecretsPath, ReadOnly: true}
	})
	if err != nil {
		return nil, err
	}
	for _, i := range apps {
		ops = appendAll(ops, "/spec/containers/"+strconv.Itoa(i)+"/volumeMounts", p.Spec.Containers[i].VolumeMounts == nil, []any{mount})
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

type builder struct {
	pod      *Pod
	settings Settings
	req      *agentconfig.Request
	res      corev1.ResourceRequirements
	env      envCopy
}

func (b *builder) status(apps []int) Status {
	st := Status{Version: agentconfig.Version, Style: b.settings.Style}
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
	for _, i := range apps {
		st.AppContainers = append(st.AppContainers, b.pod.Spec.Containers[i].Name)
	}
	return st
}

func (b *builder) volumes() []corev1.Volume {
	mem := func(name string, limit resource.Quantity) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &limit}}}
	}
	exp := b.settings.TokenExpirationSeconds
	vols := []corev1.Volume{
		mem(SecretsVolume, secretsVolumeSize),
		mem(HomeVolume, homeVolumeSize),
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: b.settings.TokenAudience, ExpirationSeconds: &exp, Path: "token"}}}}}},
		{Name: ConfigVolume, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     strings.TrimPrefix(agentconfig.ConfigFile, agentconfig.ConfigDir+"/"),
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + agentconfig.AnnotationAgentConfig + "']"},
			}}}}},
	}
	if cm := b.req.TemplatesConfigMap; cm != "" {
		vols = append(vols, corev1.Volume{Name: TemplatesVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}})
	}
	if cm := b.req.CAConfigMap; cm != "" {
		vols = append(vols, corev1.Volume{Name: CAVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm},
				Items: []corev1.KeyToPath{{Key: b.req.CAKey, Path: strings.TrimPrefix(agentconfig.CAFile, agentconfig.CADir+"/")}}}}})
	}
	return vols
}

func (b *builder) mounts() []corev1.VolumeMount {
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
	return m
}

// container builds our container; once means it renders and exits.
func (b *builder) container(name string, once bool) corev1.Container {
	args := []string{"agent", "--config=" + agentconfig.ConfigFile}
	if once {
		args = append(args, "--once")
	}
	uid := b.settings.RunAsUser
	if uid == 0 {
		uid = defaultUID
	}
	return corev1.Container{
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
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// encodedContainer returns our container's JSON: the memoised encoding of everything but the
// copied environment, with the environment spliced in (member order does not matter in JSON).
func (b *builder) encodedContainer(B *Builder, name string, once, native bool) (json.RawMessage, error) {
	r := b.req.Resources
	key := strings.Join([]string{"container", name, strconv.FormatBool(once), strconv.FormatBool(native),
		strconv.FormatBool(b.req.TemplatesConfigMap != ""), strconv.FormatBool(b.req.CAConfigMap != ""), r.CPURequest, r.CPULimit, r.MemoryRequest, r.MemoryLimit}, "\x00")
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
	env, err := json.Marshal(struct {
		Env     []corev1.EnvVar        `json:"env,omitempty"`
		EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`
	}{b.env.env, b.env.envFrom})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(env)+len(base))
	out = append(out, env[:len(env)-1]...)
	out = append(out, ',')
	return append(out, base[1:]...), nil
}

func (b *builder) nativeSidecar() corev1.Container {
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
	ours := []string{SecretsVolume, HomeVolume, TokenVolume, ConfigVolume, TemplatesVolume, CAVolume}
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

// resources applies per-pod overrides (already validated as quantities) to the defaults.
func resources(def corev1.ResourceRequirements, o agentconfig.Resources) (corev1.ResourceRequirements, error) {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for k, v := range def.Requests {
		r.Requests[k] = v
	}
	for k, v := range def.Limits {
		r.Limits[k] = v
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
