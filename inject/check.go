package inject

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/vault-injector/vault-injector/patch"
	"github.com/vault-injector/vault-injector/webhook"
)

// Checked is the webhook's decision for one object's pod template, without the patch applied:
// what `vault-injector policy check` explains.
type Checked struct {
	Document       int
	Kind, Name, NS string
	Result         webhook.Result
}

// Check decides every pod template of in as the webhook would in namespace (empty: each
// object's own, else "default") and calls fn for each. Objects without a pod template are
// passed over.
func Check(in io.Reader, m *webhook.Mutator, namespace string, fn func(Checked)) error {
	return eachDocument(in, func(i int, doc []byte) error {
		o, err := parseObject(doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if o.tmpl == nil {
			return nil
		}
		ns := namespace
		if ns == "" {
			if md, ok := o.obj["metadata"].(map[string]any); ok {
				ns, _ = md["namespace"].(string)
			}
		}
		if ns == "" {
			ns = "default"
		}
		c := Checked{Document: i, Kind: o.kind, Name: objectName(o.obj), NS: ns}
		podJSON, err := json.Marshal(o.tmpl)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		pod, err := patch.Decode(podJSON)
		if err != nil {
			c.Result = webhook.Result{Outcome: webhook.Denied, Reason: webhook.ReasonBadPod, Err: err}
		} else {
			c.Result = m.MutatePod(pod, ns)
		}
		fn(c)
		return nil
	})
}
