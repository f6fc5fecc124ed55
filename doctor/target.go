package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// Target is what the user asked about: one object (Kind/Name), the objects of a YAML file, or
// every annotated pod of a namespace.
type Target struct {
	Namespace string
	// Kind is pod, deployment, statefulset, daemonset, job or cronjob (aliases accepted).
	Kind, Name string
	// File holds manifests (pods or workloads) when set.
	File io.Reader
	// All checks every pod of Namespace that carries an injector annotation.
	All bool
}

// subject is one pod to check: the pod to admit (a live pod or a workload's template) and the
// live pods to look at for drift and agent errors.
type subject struct {
	Name      string
	Namespace string
	Pod       *corev1.Pod
	Running   []corev1.Pod
	// Workload is "deployment/NAME" etc. for the roll command; empty for a bare pod.
	Workload string
}

// kinds maps the accepted kind spellings to one name.
var kinds = map[string]string{
	"pod": "pod", "pods": "pod", "po": "pod",
	"deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
	"statefulset": "statefulset", "statefulsets": "statefulset", "sts": "statefulset",
	"daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset",
	"job": "job", "jobs": "job",
	"cronjob": "cronjob", "cronjobs": "cronjob", "cj": "cronjob",
}

// ParseObject reads "KIND/NAME" or "NAME" (a pod).
func ParseObject(arg string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		kind, name = "pod", arg
	}
	k, known := kinds[strings.ToLower(kind)]
	if !known || name == "" {
		return "", "", fmt.Errorf("%q: expected NAME (a pod) or KIND/NAME with KIND one of pod, deployment, statefulset, daemonset, job, cronjob", arg)
	}
	return k, name, nil
}

// resolve turns the target into subjects.
func resolve(ctx context.Context, c Kube, t Target) ([]subject, error) {
	switch {
	case t.File != nil:
		return fromFile(t.File, t.Namespace)
	case t.All:
		return annotatedPods(ctx, c, t.Namespace)
	}
	return fromCluster(ctx, c, t.Namespace, t.Kind, t.Name)
}

// fromCluster reads one object and the pods it runs.
func fromCluster(ctx context.Context, c Kube, ns, kind, name string) ([]subject, error) {
	s := subject{Name: kind + " " + ns + "/" + name, Namespace: ns}
	var tmpl *corev1.PodTemplateSpec
	var sel *metav1.LabelSelector
	switch kind {
	case "pod":
		p, err := get[corev1.Pod](ctx, c, resPods, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read pod %s/%s: %w", ns, name, err)
		}
		s.Pod, s.Running, s.Workload = p, []corev1.Pod{*p}, ownerWorkload(ctx, c, p)
		return []subject{s}, nil
	case "deployment":
		o, err := get[appsv1.Deployment](ctx, c, resDeployments, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read deployment %s/%s: %w", ns, name, err)
		}
		tmpl, sel = &o.Spec.Template, o.Spec.Selector
	case "statefulset":
		o, err := get[appsv1.StatefulSet](ctx, c, resStatefulSets, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read statefulset %s/%s: %w", ns, name, err)
		}
		tmpl, sel = &o.Spec.Template, o.Spec.Selector
	case "daemonset":
		o, err := get[appsv1.DaemonSet](ctx, c, resDaemonSets, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read daemonset %s/%s: %w", ns, name, err)
		}
		tmpl, sel = &o.Spec.Template, o.Spec.Selector
	case "job":
		o, err := get[batchv1.Job](ctx, c, resJobs, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read job %s/%s: %w", ns, name, err)
		}
		tmpl, sel = &o.Spec.Template, o.Spec.Selector
	case "cronjob":
		o, err := get[batchv1.CronJob](ctx, c, resCronJobs, ns, name)
		if err != nil {
			return nil, fmt.Errorf("read cronjob %s/%s: %w", ns, name, err)
		}
		tmpl = &o.Spec.JobTemplate.Spec.Template
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	s.Pod = podFromTemplate(tmpl, ns, name)
	s.Workload = kind + "/" + name
	if sel != nil {
		ls, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return nil, fmt.Errorf("%s: selector: %w", s.Name, err)
		}
		pods, err := list[corev1.PodList](ctx, c, resPods, ns, ls.String())
		if err != nil {
			return nil, fmt.Errorf("%s: list its pods: %w", s.Name, err)
		}
		s.Running = pods.Items
	}
	return []subject{s}, nil
}

// ownerWorkload names the workload that owns a pod, for the roll command ("" for a bare pod).
func ownerWorkload(ctx context.Context, c Kube, p *corev1.Pod) string {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return ""
	}
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := get[appsv1.ReplicaSet](ctx, c, resReplicaSets, p.Namespace, ref.Name)
		if err != nil {
			return "replicaset/" + ref.Name
		}
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
			return "deployment/" + d.Name
		}
		return "replicaset/" + ref.Name
	case "StatefulSet", "DaemonSet", "Job":
		return strings.ToLower(ref.Kind) + "/" + ref.Name
	}
	return ""
}

// annotatedPods are the pods of ns that carry an injector annotation, one subject each.
func annotatedPods(ctx context.Context, c Kube, ns string) ([]subject, error) {
	pods, err := list[corev1.PodList](ctx, c, resPods, ns, "")
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", ns, err)
	}
	var out []subject
	for i := range pods.Items {
		p := &pods.Items[i]
		if !hasPrefixedAnnotation(p.Annotations, []string{agentconfig.Prefix, agentconfig.VaultPrefix}) {
			continue
		}
		out = append(out, subject{Name: "pod " + ns + "/" + p.Name, Namespace: ns, Pod: p, Running: []corev1.Pod{*p}, Workload: ownerWorkload(ctx, c, p)})
	}
	return out, nil
}

// fromFile decodes pods and workloads from YAML; other kinds are skipped.
func fromFile(in io.Reader, ns string) ([]subject, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out []subject
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := codecs().UniversalDeserializer().Decode(doc, nil, nil)
		if runtime.IsMissingKind(err) || runtime.IsMissingVersion(err) {
			return nil, fmt.Errorf("document %d: expected a Kubernetes object with apiVersion and kind", i)
		}
		if runtime.IsNotRegisteredError(err) {
			continue // a kind client-go does not know (a CRD): nothing to inject
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if s, ok := subjectOf(obj, ns); ok {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no Pod, Deployment, StatefulSet, DaemonSet, Job or CronJob in the file")
	}
	return out, nil
}

// subjectOf finds the pod of a decoded object.
func subjectOf(obj runtime.Object, ns string) (subject, bool) {
	var meta metav1.ObjectMeta
	var tmpl *corev1.PodTemplateSpec
	kind := ""
	switch o := obj.(type) {
	case *corev1.Pod:
		if o.Namespace == "" {
			o.Namespace = ns
		}
		return subject{Name: "pod " + o.Namespace + "/" + o.Name + " (file)", Namespace: o.Namespace, Pod: o}, true
	case *appsv1.Deployment:
		meta, tmpl, kind = o.ObjectMeta, &o.Spec.Template, "deployment"
	case *appsv1.StatefulSet:
		meta, tmpl, kind = o.ObjectMeta, &o.Spec.Template, "statefulset"
	case *appsv1.DaemonSet:
		meta, tmpl, kind = o.ObjectMeta, &o.Spec.Template, "daemonset"
	case *batchv1.Job:
		meta, tmpl, kind = o.ObjectMeta, &o.Spec.Template, "job"
	case *batchv1.CronJob:
		meta, tmpl, kind = o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template, "cronjob"
	default:
		return subject{}, false
	}
	if meta.Namespace == "" {
		meta.Namespace = ns
	}
	return subject{Name: kind + " " + meta.Namespace + "/" + meta.Name + " (file)", Namespace: meta.Namespace, Pod: podFromTemplate(tmpl, meta.Namespace, meta.Name)}, true
}

func podFromTemplate(t *corev1.PodTemplateSpec, ns, owner string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: *t.ObjectMeta.DeepCopy(), Spec: *t.Spec.DeepCopy()}
	p.Namespace = ns
	if p.Name == "" && p.GenerateName == "" {
		p.GenerateName = owner + "-"
	}
	return p
}

// admissionCopy is the pod as its owner would create it again: server-set fields and what we
// injected removed, a generated name so it never collides with the live pod.
func admissionCopy(p *corev1.Pod) *corev1.Pod {
	base := p.Name
	if base == "" {
		base = strings.TrimSuffix(p.GenerateName, "-")
	}
	if base == "" {
		base = "pod"
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		GenerateName: base + "-doctor-",
		Namespace:    p.Namespace,
		Labels:       p.Labels,
		Annotations:  map[string]string{},
	}}
	for k, v := range p.Annotations {
		if k != agentconfig.AnnotationStatus && k != agentconfig.AnnotationAgentConfig {
			out.Annotations[k] = v
		}
	}
	spec := p.Spec.DeepCopy()
	spec.NodeName = ""
	spec.InitContainers = withoutOurs(spec.InitContainers)
	spec.Containers = withoutOurs(spec.Containers)
	var vols []corev1.Volume
	for _, v := range spec.Volumes {
		if !ours(v.Name) {
			vols = append(vols, v)
		}
	}
	spec.Volumes = vols
	out.Spec = *spec
	return out
}

func ours(name string) bool { return strings.HasPrefix(name, "vault-injector-") }

func withoutOurs(cs []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for _, c := range cs {
		if c.Name == patch.AgentContainer || c.Name == patch.InitContainer {
			continue
		}
		var mounts []corev1.VolumeMount
		for _, m := range c.VolumeMounts {
			if !ours(m.Name) {
				mounts = append(mounts, m)
			}
		}
		c.VolumeMounts = mounts
		out = append(out, c)
	}
	return out
}
