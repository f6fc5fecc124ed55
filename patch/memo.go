package patch

import (
	"encoding/json"
	"sync"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// Builder is Build for one set of Settings, memoising the JSON of what does not depend on the
// pod (our containers without their copied environment, our volumes, the app mount), so the
// admission hot path does not re-encode large corev1 structs by reflection every time. The
// memo only changes speed: the operations are the same as a fresh Build's.
type Builder struct {
	settings Settings
	mu       sync.Mutex
	enc      map[memoKey]json.RawMessage
	vols     map[volumesKey][]any
}

// memoKey names one memoised piece by everything it depends on besides the Settings.
type memoKey struct {
	piece         string // "container" or "mount"
	name          string
	once, native  bool
	templates, ca bool
	resources     agentconfig.Resources
	secretsPath   string
	envStyle      agentconfig.EnvStyle
	execBinary    bool
}

// volumesKey names our volumes by the ConfigMaps they project.
type volumesKey struct {
	templates, ca, caKey string
	envStyle             agentconfig.EnvStyle
	execBinary           bool
}

// memoLimit bounds the memo: keys include per-pod overrides (resources, ConfigMap name).
const memoLimit = 512

// NewBuilder returns a Builder for s.
func NewBuilder(s Settings) *Builder {
	return &Builder{settings: s, enc: map[memoKey]json.RawMessage{}, vols: map[volumesKey][]any{}}
}

func (B *Builder) encoded(key memoKey, v func() any) (json.RawMessage, error) {
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
func (B *Builder) encodedVolumes(b *podBuild) ([]any, error) {
	key := volumesKey{b.req.TemplatesConfigMap, b.req.CAConfigMap, b.req.CAKey, b.envStyle(), b.needsExecBinary()}
	// Pods whose identities ask for tokens of their own audiences are rare: not memoised.
	memo := !extraTokens(b.req)
	var vols []any
	if memo {
		B.mu.Lock()
		memoised, ok := B.vols[key]
		B.mu.Unlock()
		if ok {
			return memoised, nil
		}
	}
	for _, v := range b.volumes() {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		vols = append(vols, json.RawMessage(raw))
	}
	B.mu.Lock()
	if len(B.vols) < memoLimit && memo {
		B.vols[key] = vols
	}
	B.mu.Unlock()
	return vols, nil
}
