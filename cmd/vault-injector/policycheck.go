//go:build !webhookonly

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vault-injector/vault-injector/inject"
	"github.com/vault-injector/vault-injector/internal/cliflags"
	"github.com/vault-injector/vault-injector/policy"
	"github.com/vault-injector/vault-injector/webhook"
)

// offlinePolicy is the policy of `inject --policy` and `policy check`: a file, and the labels
// the namespace is assumed to carry.
type offlinePolicy struct {
	file, nsLabels string
}

func (o *offlinePolicy) register(fs *flag.FlagSet, fileUsage string) {
	fs.StringVar(&o.file, "policy", "", fileUsage)
	fs.StringVar(&o.nsLabels, "namespace-labels", "", "labels of the namespace, as k=v,k2=v2, for policy rules that match by namespaceSelector (empty: those rules do not match)")
}

// apply sets the policy file (if any) on m.
func (o *offlinePolicy) apply(m *webhook.Mutator) (*policy.Policy, error) {
	if o.file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(o.file)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	p, err := policy.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--policy=%s: %w", o.file, err)
	}
	m.Policy = webhook.StaticPolicy{P: p}
	if o.nsLabels != "" {
		set, err := labels.ConvertSelectorToLabelsMap(o.nsLabels)
		if err != nil {
			return nil, fmt.Errorf("--namespace-labels=%q: expected k=v,k2=v2: %w", o.nsLabels, err)
		}
		m.NamespaceLabels = func(string) map[string]string { return set }
	}
	return p, nil
}

const policyUsage = "policy check -f POLICY [-n NAMESPACE] [--namespace-labels k=v,...] [FILE|- ...]"

// runPolicy is `vault-injector policy check`: it validates a policy file and, for each pod
// template of the files given, says which rule allows it or why each matching rule does not.
// The exit code is 1 when the policy is invalid or any pod is denied.
func runPolicy(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("expected a subcommand: %s", policyUsage)
	}
	fs := cliflags.New("policy check", policyUsage)
	fs.SetOutput(stderr)
	var mf mutatorFlags
	mf.register(fs)
	var op offlinePolicy
	op.register(fs, "")
	file := fs.String("f", "", "policy file to validate")
	ns := fs.String("n", "", "namespace the objects would be created in (default: their own, else \"default\")")
	if err := cliflags.Parse(fs, args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("-f is required: %s", policyUsage)
	}
	if op.file != "" {
		return fmt.Errorf("give the policy with -f, not --policy")
	}
	op.file = *file
	m, err := mf.mutator()
	if err != nil {
		return err
	}
	p, err := op.apply(m)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid, %d rules (%s)\n", *file, len(p.Rules), strings.Join(p.RuleNames(), ", "))
	denied := 0
	for _, name := range fs.Args() {
		in, done, err := openInput(name, stdin)
		if err != nil {
			return err
		}
		err = inject.Check(in, m, *ns, func(c inject.Checked) {
			fmt.Fprintf(stdout, "%s: %s %s in namespace %s: %s\n", name, c.Kind, c.Name, c.NS, checkSummary(c.Result))
			if c.Result.Outcome == webhook.Denied {
				denied++
			}
			if c.Result.Policy != nil {
				for _, line := range c.Result.Policy.Explain() {
					fmt.Fprintf(stdout, "  %s\n", line)
				}
			}
		})
		done()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if denied > 0 {
		return fmt.Errorf("%d denied", denied)
	}
	return nil
}

// checkSummary is one object's decision in a line.
func checkSummary(r webhook.Result) string {
	switch r.Outcome {
	case webhook.Denied:
		return "denied: " + r.Err.Error()
	case webhook.Skipped:
		return "not injected (" + r.Reason + ")"
	default:
		return "allowed"
	}
}
