package agentconfig

import (
	"encoding/json"
	"path"
	"strconv"
	"strings"
)

// parser collects what a pod's annotations ask for, one key at a time; resolve then applies the
// rules that involve several keys or the operator's defaults.
type parser struct {
	req     *Request
	cfg     *Config
	id      Identity
	notify  Notify
	optOut  bool
	outputs map[string]*output
	env     map[string]*EnvVar
	// envIdentity holds env-<NAME>-identity: the identity and the key that named it.
	envIdentity map[string][2]string
	// ids are the named identities (identity-<id>-<field>); identities.go.
	ids map[string]*idBlock
	// templatesIdentity is the templates-configmap-identity annotation's value, when given.
	templatesIdentity, templatesIdentityKey string
}

// output is one secret-/template-<name> file being built, with the annotations that named it,
// so that a clash can name both sides.
type output struct {
	Secret
	// fileKey is the file-<name> annotation, when the file is not the default <name>.
	fileKey string
	// identityKey is the secret-/template-<name>-identity annotation, when given.
	identityKey string
}

// secret returns the output for name, creating it with the defaults.
func (p *parser) secret(name string) *output {
	o, ok := p.outputs[name]
	if !ok {
		o = &output{Secret: Secret{Name: name, Identity: DefaultIdentity, File: name, Perms: DefaultPerms}}
		p.outputs[name] = o
	}
	return o
}

// setter parses and validates one annotation's value and assigns it. It returns an
// *InvalidValue (the caller names the key) or an *AnnotationError (already named).
type setter func(p *parser, val string) error

// annotationTable has one entry per fixed annotation key. Per-output keys (secret-<name>, …)
// are in outputTable.
var annotationTable = map[string]setter{
	AnnotationInject: func(p *parser, v string) error {
		b, err := parseBool(v)
		p.optOut = !b
		return err
	},
	AnnotationRole: func(p *parser, v string) (err error) {
		p.id.Role, err = ParseRole(v)
		return err
	},
	AnnotationAuthPath: func(p *parser, v string) (err error) {
		p.id.AuthPath, err = ParseAuthPath(v)
		return err
	},
	AnnotationAddress: func(p *parser, v string) (err error) {
		p.id.Address, err = ParseAddress(v)
		return err
	},
	AnnotationNamespace: func(p *parser, v string) (err error) {
		p.id.Namespace, err = ParseVaultNamespace(v)
		return err
	},
	AnnotationTLSServerName: func(p *parser, v string) error {
		if v == "" || strings.ContainsAny(v, "/: \t") {
			return invalid("a DNS name")
		}
		p.id.TLSServerName = v
		return nil
	},
	AnnotationTLSSkipVerify: func(p *parser, v string) (err error) {
		p.id.TLSSkipVerify, err = parseBool(v)
		return err
	},
	AnnotationCAConfigMap: func(p *parser, v string) (err error) {
		p.req.CAConfigMap, p.req.CAKey, err = ParseCAConfigMap(v)
		return err
	},
	AnnotationTemplatesConfigMap: func(p *parser, v string) error {
		if !dns1123Subdomain.MatchString(v) || len(v) > 253 {
			return invalid("a ConfigMap name (lower-case DNS subdomain) in the pod's namespace")
		}
		p.req.TemplatesConfigMap = v
		p.cfg.TemplatesDir = TemplatesDir
		p.cfg.TemplatesIdentity = DefaultIdentity
		return nil
	},
	AnnotationSecretsPath: func(p *parser, v string) (err error) {
		p.req.SecretsPath, err = ParseSecretsPath(v)
		return err
	},
	AnnotationContainers: func(p *parser, v string) error {
		names := strings.Split(v, ",")
		for i, n := range names {
			n = strings.TrimSpace(n)
			if !dns1123Label.MatchString(n) {
				return invalid("a comma-separated list of container names")
			}
			names[i] = n
		}
		p.req.Containers = names
		return nil
	},
	AnnotationMode: func(p *parser, v string) error {
		if m := Mode(v); m != ModeSidecar && m != ModeInit {
			return invalid(`"sidecar" or "init"`)
		}
		p.cfg.Mode = Mode(v)
		return nil
	},
	AnnotationRefreshInterval: func(p *parser, v string) error {
		d, err := ParseRefreshInterval(v)
		p.cfg.RefreshInterval = Duration(d)
		return err
	},
	AnnotationRevokeOnShutdown: func(p *parser, v string) error {
		b, err := parseBool(v)
		p.cfg.RevokeOnShutdown = &b
		return err
	},
	AnnotationNotifySignal: func(p *parser, v string) error {
		if _, ok := Signals[strings.ToUpper(v)]; !ok {
			return invalid("a signal name like SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT or SIGQUIT")
		}
		p.notify.Signal = strings.ToUpper(v)
		return nil
	},
	AnnotationNotifyProcess: func(p *parser, v string) error {
		if v == "" || strings.ContainsAny(v, "/\n") || len(v) > 64 {
			return invalid("a process name as in /proc/<pid>/comm, like nginx")
		}
		p.notify.Process = v
		return nil
	},
	AnnotationNotifyCommand: func(p *parser, v string) error {
		var argv []string
		if err := json.Unmarshal([]byte(v), &argv); err != nil || len(argv) == 0 || argv[0] == "" {
			return invalid(`a JSON array of strings, like ["/bin/reload","--now"]`)
		}
		p.notify.Command = argv
		return nil
	},
	AnnotationEnvStyle: func(p *parser, v string) (err error) {
		p.req.EnvStyle, err = ParseEnvStyle(v, false)
		return err
	},
	AnnotationEnvOnChange: func(p *parser, v string) error {
		if s := EnvOnChange(v); s != EnvOnChangeNone && s != EnvOnChangeRestart {
			return invalid(`"none" or "restart" (the app container is restarted when one of its variables changes)`)
		}
		p.req.EnvOnChange = EnvOnChange(v)
		return nil
	},
	AnnotationAuthType: func(p *parser, v string) (err error) {
		p.id.Method, err = ParseAuthType(v)
		return err
	},
	AnnotationTokenAudience: func(p *parser, v string) (err error) {
		p.id.Audience, err = ParseTokenAudience(v)
		return err
	},
	AnnotationTemplatesConfigMapIdentity: func(p *parser, v string) (err error) {
		p.templatesIdentity, err = parseIdentityRef(v)
		p.templatesIdentityKey = AnnotationTemplatesConfigMapIdentity
		return err
	},
	AnnotationCPURequest:    resourceSetter(func(r *Resources) *string { return &r.CPURequest }),
	AnnotationCPULimit:      resourceSetter(func(r *Resources) *string { return &r.CPULimit }),
	AnnotationMemoryRequest: resourceSetter(func(r *Resources) *string { return &r.MemoryRequest }),
	AnnotationMemoryLimit:   resourceSetter(func(r *Resources) *string { return &r.MemoryLimit }),
	// Written by us; the webhook checks it before parsing.
	AnnotationStatus: func(*parser, string) error { return nil },
	AnnotationAgentConfig: func(*parser, string) error {
		// The value is not echoed: it is ours to write, and may be long.
		return bad(AnnotationAgentConfig, "(omitted)", "no value: this annotation is written by the webhook, not by users")
	},
}

// resourceSetter validates a quantity and keeps the annotation's text (the patch parses it).
func resourceSetter(field func(*Resources) *string) setter {
	return func(p *parser, v string) error {
		if _, err := ParseResource(v); err != nil {
			return err
		}
		*field(&p.req.Resources) = v
		return nil
	}
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(`"true" or "false"`)
	}
	return b, nil
}

// outputSetter is a per-output annotation: the key names the output after its kind prefix.
type outputSetter func(o *output, key, val string) error

// outputTable has one entry per per-output annotation kind: Prefix + kind + <name>.
var outputTable = []struct {
	kind string
	set  outputSetter
}{
	{kindSecret, func(o *output, _, v string) error {
		p, err := cleanVaultPath(v)
		if err != nil {
			return invalid("a Vault path like secret/data/app (" + err.Error() + ")")
		}
		o.Path = p
		return nil
	}},
	{kindTmpl, func(o *output, _, v string) error {
		if strings.TrimSpace(v) == "" {
			return invalid("a non-empty consul-template template")
		}
		o.Template = v
		return nil
	}},
	{kindFile, func(o *output, key, v string) error {
		if err := validateRelPath(v); err != nil {
			return invalid("a relative file path inside the secrets directory (" + err.Error() + ")")
		}
		o.File, o.fileKey = path.Clean(v), key
		return nil
	}},
	{kindPerms, func(o *output, _, v string) error {
		m, err := parsePerms(v)
		if err != nil {
			return invalid("an octal file mode like 0400 or 0644")
		}
		o.Perms = m
		return nil
	}},
}

// setOutput handles secret-, template-, file- and perms-<name>; short is key without Prefix.
func (p *parser) setOutput(key, short, val string) error {
	if name, ok := strings.CutPrefix(short, kindEnv); ok {
		return p.setEnv(key, name, val)
	}
	if handled, err := p.setKeyed(key, short, val); handled {
		return err
	}
	for _, e := range outputTable {
		name, ok := strings.CutPrefix(short, e.kind)
		if !ok {
			continue
		}
		if err := validateName(name); err != nil {
			return invalid("a key of the form " + Prefix + e.kind + "<name> where <name> " + err.Error())
		}
		return e.set(p.secret(name), key, val)
	}
	return invalid("a known annotation; " + Prefix + "* is reserved and this key is not one of ours (see the README's annotation table)")
}
