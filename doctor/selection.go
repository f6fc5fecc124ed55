package doctor

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// optInLabel is the namespace label the chart's namespaceSelector requires.
const optInLabel = "vault-injector.io/inject"

// checkNamespaceSelector evaluates the webhook's namespaceSelector on the namespace's labels.
func checkNamespaceSelector(ns *corev1.Namespace, hook *admissionregistrationv1.MutatingWebhook) Finding {
	const check = "namespace-selector"
	subject := "namespace " + ns.Name
	if hook.NamespaceSelector == nil {
		return pass(check, subject, "the webhook has no namespaceSelector: every namespace is sent")
	}
	sel, err := metav1.LabelSelectorAsSelector(hook.NamespaceSelector)
	if err != nil {
		return fail(check, subject, "fix namespaceSelector in the webhook configuration", "the webhook's namespaceSelector is invalid: %v", err)
	}
	if sel.Matches(labels.Set(ns.Labels)) {
		return pass(check, subject, "namespace %s matches the webhook's namespaceSelector (%s)", ns.Name, sel)
	}
	var missing []string
	for k, v := range hook.NamespaceSelector.MatchLabels {
		if ns.Labels[k] != v {
			missing = append(missing, k+"="+v)
		}
	}
	if len(missing) > 0 {
		return fail(check, subject, fmt.Sprintf("kubectl label namespace %s %s, then roll its workloads", ns.Name, strings.Join(missing, " ")),
			"namespace %s lacks the label %s: the API server never sends its pods to the webhook", ns.Name, strings.Join(missing, ", "))
	}
	return fail(check, subject, "this namespace is excluded by the webhook's namespaceSelector (webhook.excludedNamespaces / namespaceSelector.matchExpressions in the chart values): run the workload in another namespace",
		"namespace %s does not match the webhook's namespaceSelector (%s)", ns.Name, sel)
}

// checkObjectSelector evaluates the webhook's objectSelector on the pod's labels.
func checkObjectSelector(subject string, pod *corev1.Pod, hook *admissionregistrationv1.MutatingWebhook) Finding {
	const check = "object-selector"
	if hook.ObjectSelector == nil || (len(hook.ObjectSelector.MatchLabels) == 0 && len(hook.ObjectSelector.MatchExpressions) == 0) {
		return pass(check, subject, "the webhook has no objectSelector")
	}
	sel, err := metav1.LabelSelectorAsSelector(hook.ObjectSelector)
	if err != nil {
		return fail(check, subject, "fix objectSelector in the webhook configuration", "the webhook's objectSelector is invalid: %v", err)
	}
	if sel.Matches(labels.Set(pod.Labels)) {
		return pass(check, subject, "the pod's labels match the webhook's objectSelector (%s)", sel)
	}
	return fail(check, subject, fmt.Sprintf("give the pod (template) labels matching %s, or change webhookConfiguration.objectSelector", sel),
		"the pod's labels do not match the webhook's objectSelector (%s)", sel)
}

// shippedCondition is the matchCondition expression the chart and the kustomize base ship,
// with the annotation prefixes it sends. doctor evaluates that shape itself rather than
// linking a CEL interpreter (cel-go and k8s.io/apiserver are not dependencies of the product):
// any other expression is reported as undecided.
var (
	shippedCondition = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^has\(object\.metadata\.annotations\)\s*&&\s*object\.metadata\.annotations\.exists\(k,\s*(.*)\)$`)
	})
	startsWith = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^k\.startsWith\('([^'\\]*)'\)$`) })
)

// shippedPrefixes returns the prefixes of an expression of the shipped shape.
func shippedPrefixes(expr string) ([]string, bool) {
	m := shippedCondition().FindStringSubmatch(strings.TrimSpace(strings.Join(strings.Fields(expr), " ")))
	if m == nil {
		return nil, false
	}
	var prefixes []string
	for _, term := range strings.Split(m[1], "||") {
		s := startsWith().FindStringSubmatch(strings.TrimSpace(term))
		if s == nil {
			return nil, false
		}
		prefixes = append(prefixes, s[1])
	}
	return prefixes, true
}

// checkMatchConditions evaluates the webhook's matchConditions on the pod: all must be true
// for the pod to be sent.
func checkMatchConditions(subject string, pod *corev1.Pod, hook *admissionregistrationv1.MutatingWebhook) Finding {
	const check = "match-conditions"
	if len(hook.MatchConditions) == 0 {
		return pass(check, subject, "the webhook has no matchConditions")
	}
	var names []string
	for _, mc := range hook.MatchConditions {
		prefixes, ok := shippedPrefixes(mc.Expression)
		if !ok {
			return warn(check, subject, "check the expression by hand, or rely on the dry-run check below",
				"matchCondition %q is not the one the chart ships; doctor does not evaluate other CEL expressions: %s", mc.Name, mc.Expression)
		}
		if !hasPrefixedAnnotation(pod.Annotations, prefixes) {
			return fail(check, subject, fmt.Sprintf("annotate the pod (template) with %srole and %ssecret-NAME or %stemplate-NAME", agentconfig.Prefix, agentconfig.Prefix, agentconfig.Prefix),
				"matchCondition %q is false: the pod has no annotation starting with %s, so it is never sent", mc.Name, strings.Join(prefixes, " or "))
		}
		names = append(names, mc.Name)
	}
	return pass(check, subject, "matchConditions %s are true for the pod", strings.Join(names, ", "))
}

func hasPrefixedAnnotation(ann map[string]string, prefixes []string) bool {
	for k := range ann {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
	}
	return false
}

// checkOptOut reports a pod that asked not to be injected, and a pod that requests nothing.
func checkOptOut(subject string, pod *corev1.Pod) Finding {
	const check = "opt-out"
	if agentconfig.OptedOut(pod.Annotations) {
		return fail(check, subject, fmt.Sprintf("remove the annotation %s=%q if this pod should get its secrets", agentconfig.AnnotationInject, pod.Annotations[agentconfig.AnnotationInject]),
			"the pod opted out with %s=%q", agentconfig.AnnotationInject, pod.Annotations[agentconfig.AnnotationInject])
	}
	return pass(check, subject, "the pod does not opt out (%s)", agentconfig.AnnotationInject)
}

// dryRun is the pod as the API server would store it.
type dryRun struct {
	Pod      *corev1.Pod
	Injected bool
}

// checkDryRun creates the pod with dryRun=All: every admission webhook and plugin runs,
// nothing is stored. The answer is the pod as it would be stored, or the denial.
func checkDryRun(ctx context.Context, c Kube, subject string, pod *corev1.Pod) (*dryRun, Finding) {
	const check = "dry-run"
	probe := admissionCopy(pod)
	got := &corev1.Pod{}
	if err := c.Create(ctx, resPods, probe.Namespace, "", probe, got, true); err != nil {
		return nil, fail(check, subject, "fix what the message names and create the pod again", "a dry-run create is refused: %q", err.Error())
	}
	if _, ok := got.Annotations[agentconfig.AnnotationStatus]; !ok {
		return &dryRun{Pod: got}, fail(check, subject, "see the failed checks above; if all passed, read the webhook's logs for this pod (reason \"nothing-requested\" means no secret- or template- annotation)",
			"a dry-run create comes back without injection (no %s annotation)", agentconfig.AnnotationStatus)
	}
	return &dryRun{Pod: got, Injected: true}, pass(check, subject, "a dry-run create comes back injected (%d init containers, %d containers)", len(got.Spec.InitContainers), len(got.Spec.Containers))
}
