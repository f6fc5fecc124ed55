// Package webhook owns admission: the HTTPS server (/mutate, /healthz, /readyz, /metrics), the
// AdmissionReview wire format, and the decision whether to inject a pod. The same decision
// (Mutator.Mutate) serves the offline `vault-injector inject` command.
package webhook

import (
	"fmt"
	"slices"
	"sync"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/policy"
)

// Outcome classifies a decision; it is the metrics label and the log field.
type Outcome string

const (
	Injected Outcome = "injected"
	Skipped  Outcome = "skipped"
	Denied   Outcome = "denied"
)

// Reasons for skipped and denied pods.
const (
	ReasonOptedOut          = "opted-out"
	ReasonNothingRequested  = "nothing-requested"
	ReasonAlreadyInjected   = "already-injected"
	ReasonExcludedNamespace = "excluded-namespace"
	ReasonInvalidAnnotation = "invalid-annotation"
	ReasonConflict          = "conflict"
	ReasonBadPod            = "bad-pod"
)

// Result is the decision for one pod.
type Result struct {
	Outcome Outcome
	Reason  string
	// Patch is set when Outcome is Injected.
	Patch []patch.Operation
	// Err explains a denial; its text is shown to the user by the API server.
	Err error
	// Warnings are shown by kubectl for a pod that is injected but will not work as its
	// author probably expects.
	Warnings []string
	// Policy is the admission policy's decision, when a policy is in force.
	Policy *policy.Decision
}

// Mutator decides and builds. Its fields are the operator's settings.
type Mutator struct {
	Defaults agentconfig.Defaults
	Settings patch.Settings
	// AcceptVaultAnnotations injects pods annotated for HashiCorp's injector
	// (vault.hashicorp.com/), translated to ours (agentconfig.TranslateVaultAnnotations).
	AcceptVaultAnnotations bool
	// ExcludedNamespaces never get injected, whatever their labels say.
	ExcludedNamespaces []string
	// Policy, when set, is the admission policy (policy.go); NamespaceLabels serves its
	// namespaceSelector rules.
	Policy          PolicySource
	NamespaceLabels NamespaceLabels

	// EnvStyle, when set, decides the env style per admission (--env-style=auto: the nodes'
	// kubelets); nil: Settings.EnvStyle.
	EnvStyle func() agentconfig.EnvStyle

	once     sync.Once
	builders map[agentconfig.EnvStyle]*patch.Builder

	memo requestMemo
}

// DefaultExcludedNamespaces are namespaces where injection would be unsafe: a broken webhook
// must never be able to block the control plane.
var DefaultExcludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Mutate decides for the raw pod JSON in namespace ns (the admission request's namespace, which
// a pod created from a template may not carry itself).
func (m *Mutator) Mutate(raw []byte, ns string) Result {
	pod, err := patch.Decode(raw)
	if err != nil {
		return Result{Outcome: Denied, Reason: ReasonBadPod, Err: err}
	}
	return m.MutatePodAs(pod, DecodeRunAs(raw), ns)
}

// MutatePod is Mutate for an already decoded pod view.
func (m *Mutator) MutatePod(pod *patch.Pod, ns string) Result {
	return m.MutatePodAs(pod, nil, ns)
}

// MutatePodAs is MutatePod with the users the pod's containers run as (nil: unknown), which
// only warnings depend on.
func (m *Mutator) MutatePodAs(pod *patch.Pod, runAs *RunAs, ns string) Result {
	if ns == "" && pod.Metadata != nil {
		ns = pod.Metadata.Namespace
	}
	if slices.Contains(m.ExcludedNamespaces, ns) {
		return Result{Outcome: Skipped, Reason: ReasonExcludedNamespace}
	}
	ann := pod.Annotations()
	if patch.AlreadyInjected(pod) {
		if d, err := m.checkInjected(pod, ns); err != nil {
			return Result{Outcome: Denied, Reason: ReasonPolicy, Err: err, Policy: d}
		}
		return Result{Outcome: Skipped, Reason: ReasonAlreadyInjected}
	}
	if agentconfig.OptedOut(ann) {
		return Result{Outcome: Skipped, Reason: ReasonOptedOut}
	}
	if m.AcceptVaultAnnotations && agentconfig.HasVaultAnnotations(ann) {
		translated, err := agentconfig.TranslateVaultAnnotations(ann)
		if err != nil {
			return Result{Outcome: Denied, Reason: ReasonInvalidAnnotation, Err: err}
		}
		if translated == nil {
			return Result{Outcome: Skipped, Reason: ReasonNothingRequested}
		}
		ann = translated
	}
	if total, ours := annotationBytes(ann); ours && total > MaxAnnotationBytes {
		return Result{Outcome: Denied, Reason: ReasonAnnotationsTooLarge, Err: errAnnotationsTooLarge(total)}
	}
	req, err := m.request(ann)
	if err != nil {
		return Result{Outcome: Denied, Reason: ReasonInvalidAnnotation, Err: err}
	}
	if req == nil {
		return Result{Outcome: Skipped, Reason: ReasonNothingRequested}
	}
	req, decision, err := m.applyPolicy(pod, ns, req)
	if err != nil {
		return Result{Outcome: Denied, Reason: ReasonPolicy, Err: err, Policy: decision}
	}
	ops, err := m.builder().Build(pod, req)
	if err != nil {
		return Result{Outcome: Denied, Reason: ReasonConflict, Err: err}
	}
	if err := checkInjectedSize(pod, ops); err != nil {
		return Result{Outcome: Denied, Reason: ReasonAnnotationsTooLarge, Err: err}
	}
	return Result{Outcome: Injected, Patch: ops, Warnings: m.warnings(pod, runAs, req), Policy: decision}
}

// builder is the patch builder for the env style in force: one per style, each memoising what
// it encodes.
func (m *Mutator) builder() *patch.Builder {
	m.once.Do(func() {
		m.builders = map[agentconfig.EnvStyle]*patch.Builder{}
		for _, st := range []agentconfig.EnvStyle{agentconfig.EnvStyleFile, agentconfig.EnvStyleExec} {
			s := m.Settings
			s.EnvStyle = st
			m.builders[st] = patch.NewBuilder(s)
		}
	})
	style := m.Settings.EnvStyle
	if m.EnvStyle != nil {
		style = m.EnvStyle()
	}
	if b, ok := m.builders[style]; ok {
		return b
	}
	return m.builders[agentconfig.EnvStyleFile]
}

// DenialMessage is the text the API server shows for a denied pod.
func (r Result) DenialMessage(podName string) string {
	return fmt.Sprintf("vault-injector: pod %q not injected: %v", podName, r.Err)
}
