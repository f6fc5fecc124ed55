package webhook

import (
	"fmt"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// MaxAnnotationBytes is the API server's limit on a pod's annotations, counted as the sum of
// len(key)+len(value). It is checked after mutating admission, so a pod we push past it would
// be refused with a message that does not say why; we deny it ourselves, naming the limit.
const MaxAnnotationBytes = apivalidation.TotalAnnotationSizeLimitB

// ReasonAnnotationsTooLarge is the denial reason of a pod over MaxAnnotationBytes.
const ReasonAnnotationsTooLarge = "annotations-too-large"

// annotationBytes sums len(key)+len(value) as the API server does, and says whether any key is
// ours.
func annotationBytes(ann map[string]string) (n int, ours bool) {
	for k, v := range ann {
		n += len(k) + len(v)
		ours = ours || strings.HasPrefix(k, agentconfig.Prefix)
	}
	return n, ours
}

// errAnnotationsTooLarge is the denial of a pod whose own annotations are over the limit
// already; it is decided before anything is parsed, so an oversized template costs nothing.
func errAnnotationsTooLarge(total int) error {
	return fmt.Errorf("the pod's annotations total %d bytes, over the API server's limit of %d bytes (256 KiB, keys and values); "+
		"move large templates into a ConfigMap (%s)", total, MaxAnnotationBytes, agentconfig.AnnotationTemplatesConfigMap)
}

// checkInjectedSize denies a patch that would push the pod's annotations past the limit. It
// counts what the patch really adds (the agent config repeats every inline template), minus
// any value it replaces.
func checkInjectedSize(pod *patch.Pod, ops []patch.Operation) error {
	ann := pod.Annotations()
	total, _ := annotationBytes(ann)
	if total+addedBytesBound(ops) <= MaxAnnotationBytes {
		// The common case, decided without building the map of added annotations.
		return nil
	}
	before := total
	for k, v := range addedAnnotations(ops) {
		if old, ok := ann[k]; ok {
			total -= len(k) + len(old)
		}
		total += len(k) + len(v)
	}
	if total <= MaxAnnotationBytes {
		return nil
	}
	return fmt.Errorf("injection adds %d bytes of annotations (%s repeats the inline templates), which brings the pod's annotations to %d bytes, "+
		"over the API server's limit of %d bytes (256 KiB, keys and values); move large templates into a ConfigMap (%s)",
		total-before, agentconfig.AnnotationAgentConfig, total, MaxAnnotationBytes, agentconfig.AnnotationTemplatesConfigMap)
}

// addedBytesBound is at least what the operations add to the annotations: escaped keys are
// never shorter than their unescaped form, and replaced values are not subtracted.
func addedBytesBound(ops []patch.Operation) int {
	const annPath = "/metadata/annotations/"
	n := 0
	for _, op := range ops {
		switch v := op.Value.(type) {
		case string:
			if strings.HasPrefix(op.Path, annPath) {
				n += len(op.Path) - len(annPath) + len(v)
			}
		case map[string]string, map[string]any:
			out := map[string]string{}
			copyStrings(out, v)
			if md, ok := v.(map[string]any); ok {
				copyStrings(out, md["annotations"])
			}
			for k, s := range out {
				n += len(k) + len(s)
			}
		}
	}
	return n
}

// addedAnnotations lists the annotations the operations add, whichever of the three shapes
// they take: a whole metadata object, a whole annotations map, or one key at a time.
func addedAnnotations(ops []patch.Operation) map[string]string {
	const annPath = "/metadata/annotations"
	out := map[string]string{}
	for _, op := range ops {
		if op.Op != "add" {
			continue
		}
		switch {
		case op.Path == "/metadata":
			if md, ok := op.Value.(map[string]any); ok {
				copyStrings(out, md["annotations"])
			}
		case op.Path == annPath:
			copyStrings(out, op.Value)
		case strings.HasPrefix(op.Path, annPath+"/"):
			if v, ok := op.Value.(string); ok {
				out[unescapeJSONPointer(op.Path[len(annPath)+1:])] = v
			}
		}
	}
	return out
}

func copyStrings(dst map[string]string, v any) {
	switch m := v.(type) {
	case map[string]string:
		for k, s := range m {
			dst[k] = s
		}
	case map[string]any:
		for k, s := range m {
			if s, ok := s.(string); ok {
				dst[k] = s
			}
		}
	}
}

var pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")

// unescapeJSONPointer undoes patch.EscapeJSONPointer (RFC 6901: "~1" first, then "~0").
func unescapeJSONPointer(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return pointerUnescaper.Replace(s)
}
