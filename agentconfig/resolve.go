package agentconfig

import (
	"fmt"
	"sort"
	"strings"
)

// resolve applies the rules that involve several annotations or the operator's defaults, once
// every key has been parsed, and completes the request.
func (p *parser) resolve(annotations map[string]string, d Defaults) error {
	req, cfg, id := p.req, p.cfg, &p.id
	// The default identity is part of the config when something renders with it or its role
	// is set; a pod whose outputs all name other identities needs no role of its own.
	useDefault := p.usesDefault()
	if id.Role == "" && useDefault {
		return bad(AnnotationRole, "", "the Vault role to log in with; it is required when secrets, templates or env variables are requested")
	}
	if _, set := annotations[AnnotationAuthPath]; !set {
		id.AuthPath = defaultAuthPath(id.Method, d)
	}
	if req.CAConfigMap == "" && d.CAConfigMap != "" {
		name, key, err := ParseConfigMapKey(d.CAConfigMap)
		if err != nil {
			// The webhook's flags are checked at start-up; this guards other callers.
			return fmt.Errorf("default Vault CA ConfigMap %q: %w", d.CAConfigMap, err)
		}
		req.CAConfigMap, req.CAKey = name, key
	}
	if req.CAConfigMap != "" {
		id.CACertFile = CAFile
	}
	includeDefault := useDefault || id.Role != ""
	if id.Address == "" && includeDefault {
		return bad(AnnotationAddress, "", "a Vault address, since the webhook has no default (--vault-address)")
	}
	if err := p.resolveNotify(); err != nil {
		return err
	}
	if err := p.resolveIdentities(*id, includeDefault, d); err != nil {
		return err
	}

	outputs, err := p.sortedOutputs()
	if err != nil {
		return err
	}
	if err := checkFiles(outputs, annotations); err != nil {
		return err
	}
	for _, o := range outputs {
		cfg.Secrets = append(cfg.Secrets, o.Secret)
	}
	if err := p.resolveEnv(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("annotations: %w", err)
	}
	return nil
}

// resolveNotify completes the notify settings and checks they can act.
func (p *parser) resolveNotify() error {
	n := &p.notify
	if n.Signal != "" && n.Process == "" {
		return bad(AnnotationNotifyProcess, "", "the name of the process to signal, since "+AnnotationNotifySignal+" is set")
	}
	if n.Process != "" && n.Signal == "" {
		n.Signal = "SIGHUP"
	}
	if n.Signal == "" && len(n.Command) == 0 {
		return nil
	}
	if p.cfg.Mode == ModeInit {
		return bad(AnnotationMode, string(ModeInit), `"sidecar", since notify annotations only act when files change after start`)
	}
	p.cfg.Notify = n
	return nil
}

// sortedOutputs returns the outputs by name, each with a source to render.
func (p *parser) sortedOutputs() ([]*output, error) {
	names := make([]string, 0, len(p.outputs))
	for n := range p.outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*output, 0, len(names))
	for _, n := range names {
		o := p.outputs[n]
		if o.Path == "" && o.Template == "" {
			return nil, bad(Prefix+kindSecret+n, "", "a Vault path or a "+Prefix+kindTmpl+n+" template, since file/perms annotations name "+n)
		}
		out = append(out, o)
	}
	return out, nil
}

// sourceKey is the annotation that decided where o is written: its file-<name>, else the
// secret-<name> or template-<name> whose name is the default file.
func (o *output) sourceKey() string {
	switch {
	case o.fileKey != "":
		return o.fileKey
	case o.Path != "":
		return Prefix + kindSecret + o.Name
	default:
		return Prefix + kindTmpl + o.Name
	}
}

// checkFiles denies two outputs that would write the same file, or where one's file would have
// to be the other's directory: the agent could keep only one of them, and which one would
// depend on render order. The denial names both annotations. Keys of a templates ConfigMap
// are not known here (the webhook never reads ConfigMaps, which may change after admission), so
// a clash with one of those can only be seen by the agent, when it renders.
func checkFiles(outputs []*output, annotations map[string]string) error {
	byFile := make(map[string]*output, len(outputs))
	for _, o := range outputs {
		byFile[o.File] = o
	}
	for _, o := range outputs {
		if other := byFile[o.File]; other != o {
			return fileClash(o, other, annotations, fmt.Sprintf("writes %q too", o.File))
		}
		for dir := parentDir(o.File); dir != ""; dir = parentDir(dir) {
			if other, ok := byFile[dir]; ok {
				return fileClash(o, other, annotations, fmt.Sprintf("makes %q both a file and the directory of %q", dir, o.File))
			}
		}
	}
	return nil
}

// fileClash denies one of two outputs whose files clash, naming the other. It blames the one
// whose file was chosen explicitly (file-<name>) when only one was, since moving that file is
// the likely fix; else the one named later, so the answer is stable.
func fileClash(a, b *output, annotations map[string]string, why string) error {
	blamed, kept := a, b
	if explicit := func(o *output) bool { return o.fileKey != "" }; explicit(a) == explicit(b) && a.Name < b.Name || !explicit(a) && explicit(b) {
		blamed, kept = b, a
	}
	key, keptKey := blamed.sourceKey(), kept.sourceKey()
	return bad(key, annotations[key], fmt.Sprintf("an output file of its own: with %s=%q, it %s", keptKey, annotations[keptKey], why))
}

// parentDir is p without its last element; "" at the top.
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}
