package agentconfig

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Environment variables from Vault: `env-<NAME>: <path>#<key>` or a template. The agent renders
// them into EnvFile, which app containers read through the kubelet (env style "file") or through
// `vault-injector exec` wrapping their command (env style "exec").

// Fixed paths of the env feature.
const (
	// EnvDir is a Memory emptyDir for the env file. In the file style only our containers mount
	// it (the kubelet reads the file from the volume itself); the exec style mounts it read-only
	// into the wrapped app containers too.
	EnvDir = "/vault/env"
	// EnvFileName is the env file in EnvDir: what fileKeyRef.path names.
	EnvFileName = "app.env"
	EnvFile     = EnvDir + "/" + EnvFileName
	// ExecDir holds a copy of our binary for the exec style: the agent copies itself there and
	// app containers mount it read-only to run `exec`.
	ExecDir    = "/vault/exec"
	ExecBinary = ExecDir + "/vault-injector-agent"
	// EnvVersionVar is written into the env file with every other variable when the pod asks
	// to restart on change: the value an app container started with tells the agent's check
	// whether that container's environment is stale.
	EnvVersionVar = "VAULT_INJECTOR_ENV_VERSION"
)

// EnvStyle is how app containers receive the variables.
type EnvStyle string

const (
	// EnvStyleFile: env[].valueFrom.fileKeyRef, read by the kubelet (Kubernetes ≥ 1.35).
	EnvStyleFile EnvStyle = "file"
	// EnvStyleExec: the container's command runs under `vault-injector exec`.
	EnvStyleExec EnvStyle = "exec"
	// EnvStyleAuto (webhook flag only): file when every node's kubelet can read env files.
	EnvStyleAuto EnvStyle = "auto"
)

// ParseEnvStyle reads an env style; auto is accepted only where allowAuto says (the operator's
// flag, not a pod's annotation, which cannot know the nodes).
func ParseEnvStyle(v string, allowAuto bool) (EnvStyle, error) {
	switch s := EnvStyle(v); {
	case s == EnvStyleFile, s == EnvStyleExec:
		return s, nil
	case s == EnvStyleAuto && allowAuto:
		return s, nil
	case allowAuto:
		return "", invalid(`"auto", "file" or "exec"`)
	}
	return "", invalid(`"file" (env[].valueFrom.fileKeyRef, Kubernetes ≥ 1.35) or "exec" (the container's command is wrapped)`)
}

// EnvOnChange says what happens when a variable's value changes after an app container started.
type EnvOnChange string

const (
	EnvOnChangeNone    EnvOnChange = "none"
	EnvOnChangeRestart EnvOnChange = "restart"
)

// Env is the environment variables of the app containers.
type Env struct {
	// File is where the agent writes the variables (EnvFile).
	File string   `json:"file"`
	Vars []EnvVar `json:"vars"`
	// ExecBinary, when set, is where the agent copies its own binary for `exec`.
	ExecBinary string `json:"execBinary,omitempty"`
	// Versioned adds EnvVersionVar to the file, for env-on-change restart.
	Versioned bool `json:"versioned,omitzero"`
}

// EnvVar is one variable: a key of a Vault secret, or a template.
type EnvVar struct {
	Name     string `json:"name"`
	Identity string `json:"identity"`
	Path     string `json:"path,omitempty"`
	Key      string `json:"key,omitempty"`
	Template string `json:"template,omitempty"`
}

// envName is what the annotation key allows after env-: the characters of an annotation name.
var envName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// maxAnnotationName is the limit on the name part of an annotation key (after the prefix).
const maxAnnotationName = 63

// parseEnvVar reads the value of env-<name>.
func parseEnvVar(name, v string) (EnvVar, error) {
	if !envName.MatchString(name) || len(kindEnv)+len(name) > maxAnnotationName {
		return EnvVar{}, invalid(fmt.Sprintf("a key of the form %s%s<NAME> where <NAME> is letters, digits, '.', '_' or '-' (at most %d characters with %q)",
			Prefix, kindEnv, maxAnnotationName, kindEnv))
	}
	ev := EnvVar{Name: name, Identity: DefaultIdentity}
	if strings.Contains(v, "{{") {
		ev.Template = v
		return ev, nil
	}
	path, key, ok := strings.Cut(v, "#")
	p, err := cleanVaultPath(path)
	if !ok || err != nil || key == "" || strings.ContainsAny(key, "#\n") {
		return EnvVar{}, invalid("<vault path>#<key>, like database/creds/app#password or secret/data/app#api-key, or a consul-template template containing {{")
	}
	ev.Path, ev.Key = p, key
	return ev, nil
}

// setEnv handles env-<NAME> and env-<NAME>-identity (name is the key after env-).
func (p *parser) setEnv(key, name, val string) error {
	if base, ok := strings.CutSuffix(name, identitySuffix); ok && envName.MatchString(base) {
		id, err := parseIdentityRef(val)
		if err != nil {
			return err
		}
		if p.envIdentity == nil {
			p.envIdentity = map[string][2]string{}
		}
		p.envIdentity[base] = [2]string{id, key}
		return nil
	}
	ev, err := parseEnvVar(name, val)
	if err != nil {
		return err
	}
	p.env[name] = &ev
	return nil
}

// envUsesDefault reports whether a variable reads through the default identity.
func (p *parser) envUsesDefault() bool {
	for name := range p.env {
		if id, ok := p.envIdentity[name]; !ok || id[0] == DefaultIdentity {
			return true
		}
	}
	return false
}

// resolveEnv completes the env settings once every key (and the identities) is resolved.
func (p *parser) resolveEnv() error {
	for name, ref := range p.envIdentity {
		if _, ok := p.env[name]; !ok {
			return bad(ref[1], ref[0], "no value unless "+Prefix+kindEnv+name+" names the variable")
		}
		if _, ok := p.cfg.Identity(ref[0]); !ok {
			return bad(ref[1], ref[0], p.knownIdentities())
		}
		p.env[name].Identity = ref[0]
	}
	if len(p.env) == 0 {
		switch {
		case p.req.EnvStyle != "":
			return bad(AnnotationEnvStyle, string(p.req.EnvStyle), "no such annotation unless "+Prefix+kindEnv+"<NAME> annotations ask for variables")
		case p.req.EnvOnChange != "":
			return bad(AnnotationEnvOnChange, string(p.req.EnvOnChange), "no such annotation unless "+Prefix+kindEnv+"<NAME> annotations ask for variables")
		}
		return nil
	}
	restart := p.req.EnvOnChange == EnvOnChangeRestart
	if restart && p.cfg.Mode == ModeInit {
		return bad(AnnotationMode, string(ModeInit), `"sidecar", since `+AnnotationEnvOnChange+`: restart needs an agent running beside the app to see values change`)
	}
	names := make([]string, 0, len(p.env))
	for n := range p.env {
		names = append(names, n)
	}
	sort.Strings(names)
	env := &Env{File: EnvFile, Versioned: restart}
	for _, n := range names {
		if n == EnvVersionVar {
			return bad(Prefix+kindEnv+n, p.env[n].Path, "another name: "+EnvVersionVar+" is the injector's own")
		}
		env.Vars = append(env.Vars, *p.env[n])
	}
	p.cfg.Env = env
	return nil
}

// validateEnv checks the env part of a config.
func (e *Env) validate(identities map[string]bool) error {
	if e.File == "" {
		return fmt.Errorf("agent config env has no file")
	}
	if len(e.Vars) == 0 {
		return fmt.Errorf("agent config env has no variables")
	}
	seen := map[string]bool{}
	for _, v := range e.Vars {
		switch {
		case v.Name == "" || seen[v.Name]:
			return fmt.Errorf("env variable %q is empty or defined twice", v.Name)
		case !identities[v.Identity]:
			return fmt.Errorf("env variable %q uses unknown identity %q", v.Name, v.Identity)
		case v.Template == "" && (v.Path == "" || v.Key == ""):
			return fmt.Errorf("env variable %q has neither a template nor a path and key", v.Name)
		}
		seen[v.Name] = true
	}
	return nil
}
