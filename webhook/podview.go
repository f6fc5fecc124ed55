package webhook

import (
	"encoding/json"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/vault-injector/vault-injector/agentconfig"
	"github.com/vault-injector/vault-injector/patch"
)

// RunAs is the part of a pod spec that says which user its containers run as. The patch does
// not need it, so patch.Pod does not carry it; the notify-process warning does.
type RunAs struct {
	SecurityContext *UserContext     `json:"securityContext"`
	Containers      []ContainerRunAs `json:"containers"`
}

// UserContext is the part of a (pod or container) securityContext we read.
type UserContext struct {
	RunAsUser *int64 `json:"runAsUser"`
}

// ContainerRunAs is one app container's user.
type ContainerRunAs struct {
	Name            string       `json:"name"`
	SecurityContext *UserContext `json:"securityContext"`
}

// User is the UID the named container runs as according to the spec (its own runAsUser, else
// the pod's); ok is false when neither says, and the image's USER decides.
func (r *RunAs) User(container string) (uid int64, ok bool) {
	if r == nil {
		return 0, false
	}
	for _, c := range r.Containers {
		if c.Name == container && c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			return *c.SecurityContext.RunAsUser, true
		}
	}
	if r.SecurityContext != nil && r.SecurityContext.RunAsUser != nil {
		return *r.SecurityContext.RunAsUser, true
	}
	return 0, false
}

// DecodeRunAs reads RunAs from raw pod JSON; nil when the JSON says nothing usable (the
// decision never depends on it, only a warning does).
func DecodeRunAs(rawPod []byte) *RunAs {
	var p struct {
		Spec *RunAs `json:"spec"`
	}
	if err := json.Unmarshal(rawPod, &p); err != nil {
		return nil
	}
	return p.Spec
}

// admittedPod is the review's object as the handler decodes it: the patch's view of the pod
// and, for pods that ask for notify-process, who their containers run as. Both come from one
// pass over the review; the spec is read twice only for those pods.
type admittedPod struct {
	patch.Pod
	runAs RunAs
}

func (a *admittedPod) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if k := dec.PeekKind(); k != '{' {
		// Let the pod view report what it got, as it did before it was wrapped.
		return jsonv2.UnmarshalDecode(dec, &a.Pod)
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	seenMetadata := false
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch name.String() {
		case "metadata":
			seenMetadata = true
			err = jsonv2.UnmarshalDecode(dec, &a.Pod.Metadata)
		case "spec":
			// The API server writes metadata before spec, so whether the pod asks for
			// notify-process is normally known here; if not, read both views to be sure.
			if seenMetadata && a.Pod.Annotations()[agentconfig.AnnotationNotifyProcess] == "" {
				err = jsonv2.UnmarshalDecode(dec, &a.Pod.Spec)
				break
			}
			err = a.decodeSpecTwice(dec)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// decodeSpecTwice reads the spec into the pod view and into runAs.
func (a *admittedPod) decodeSpecTwice(dec *jsontext.Decoder) error {
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(raw, &a.Pod.Spec, dec.Options()); err != nil {
		return fmt.Errorf("decode pod spec: %w", err)
	}
	// A spec the pod view accepted but whose securityContext is odd only loses a warning.
	_ = jsonv2.Unmarshal(raw, &a.runAs, dec.Options())
	return nil
}
