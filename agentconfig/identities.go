package agentconfig

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Several Vault identities per pod. The single-role annotations (role, auth-path, auth-type,
// token-audience, address, namespace, tls-*) are the identity named DefaultIdentity; more are
// named by identity-<id>-<field> keys, and an output picks one with secret-<name>-identity (or
// template-<name>-identity; the same output), the templates ConfigMap with
// templates-configmap-identity. A named identity has its own login (role, auth type and mount,
// token audience) and inherits the connection (address, Vault namespace, TLS, CA) from the
// default identity's annotations unless it sets its own.

const (
	kindIdentity   = "identity-"
	identitySuffix = "-identity"
	maxIdentityLen = 32
)

// idBlock is one named identity being built, with the fields its annotations set.
type idBlock struct {
	Identity
	set map[string]bool
	// firstKey is the first of its annotations in key order, to name it in denials.
	firstKey string
}

// Identity fields a named identity can set: identity-<id>-<field>. No field is a suffix of
// another after a '-', so the field of a key is unambiguous even when <id> contains '-'.
var identityFields = []struct {
	field string
	set   func(id *Identity, v string) error
}{
	{"role", func(id *Identity, v string) (err error) { id.Role, err = ParseRole(v); return err }},
	{"auth-path", func(id *Identity, v string) (err error) { id.AuthPath, err = ParseAuthPath(v); return err }},
	{"auth-type", func(id *Identity, v string) (err error) { id.Method, err = ParseAuthType(v); return err }},
	{"token-audience", func(id *Identity, v string) (err error) { id.Audience, err = ParseTokenAudience(v); return err }},
	{"address", func(id *Identity, v string) (err error) { id.Address, err = ParseAddress(v); return err }},
	{"namespace", func(id *Identity, v string) (err error) { id.Namespace, err = ParseVaultNamespace(v); return err }},
	{"tls-server-name", func(id *Identity, v string) (err error) { id.TLSServerName, err = parseTLSServerName(v); return err }},
	{"tls-skip-verify", func(id *Identity, v string) (err error) { id.TLSSkipVerify, err = parseBool(v); return err }},
}

var identityIDRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func identityFieldNames() string {
	names := make([]string, len(identityFields))
	for i, f := range identityFields {
		names[i] = f.field
	}
	return strings.Join(names, ", ")
}

// ParseAuthType reads an auth method: "kubernetes" (Vault calls the API server's TokenReview)
// or "jwt" (Vault checks the token with the cluster's signing key).
func ParseAuthType(v string) (string, error) {
	if v != MethodKubernetes && v != MethodJWT {
		return "", invalid(strconv.Quote(MethodKubernetes) + " or " + strconv.Quote(MethodJWT))
	}
	return v, nil
}

// ParseTokenAudience reads the audience of a projected service-account token.
func ParseTokenAudience(v string) (string, error) {
	if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\n,") || len(v) > 253 {
		return "", invalid("one token audience, like vault or https://vault.example.com (no spaces or commas, at most 253 characters)")
	}
	return v, nil
}

func parseTLSServerName(v string) (string, error) {
	if v == "" || strings.ContainsAny(v, "/: \t") {
		return "", invalid("a DNS name")
	}
	return v, nil
}

// checkIdentityID checks the <id> of identity-<id>-<field>.
func checkIdentityID(id string) error {
	switch {
	case !identityIDRE.MatchString(id) || len(id) > maxIdentityLen:
		return fmt.Errorf("must be lower-case letters, digits and '-', starting and ending with a letter or digit, at most %d characters", maxIdentityLen)
	case id == DefaultIdentity:
		return fmt.Errorf("%q is the identity of the single-role annotations (%s, %s, …); set those instead", DefaultIdentity, AnnotationRole, AnnotationAuthPath)
	}
	return nil
}

// parseIdentityRef reads the value of a *-identity annotation: an identity's id, or "default".
func parseIdentityRef(v string) (string, error) {
	if v != DefaultIdentity && checkIdentityID(v) != nil {
		return "", invalid("the <id> of an identity defined by " + Prefix + kindIdentity + "<id>-role, or " + strconv.Quote(DefaultIdentity))
	}
	return v, nil
}

// setKeyed handles the pattern keys of identities: identity-<id>-<field> and
// secret-/template-<name>-identity. handled is false for other keys.
func (p *parser) setKeyed(key, short, val string) (handled bool, err error) {
	if rest, ok := strings.CutPrefix(short, kindIdentity); ok {
		return true, p.setIdentityField(key, rest, val)
	}
	for _, kind := range []string{kindSecret, kindTmpl} {
		rest, ok := strings.CutPrefix(short, kind)
		if !ok {
			continue
		}
		name, ok := strings.CutSuffix(rest, identitySuffix)
		if !ok || validateName(name) != nil {
			return false, nil
		}
		o := p.secret(name)
		if o.identityKey != "" {
			return true, invalid("one identity per output: " + o.identityKey + " names it already")
		}
		o.Identity, err = parseIdentityRef(val)
		o.identityKey = key
		return true, err
	}
	return false, nil
}

func (p *parser) setIdentityField(key, rest, val string) error {
	for _, f := range identityFields {
		id, ok := strings.CutSuffix(rest, "-"+f.field)
		if !ok {
			continue
		}
		if err := checkIdentityID(id); err != nil {
			return invalid("a key of the form " + Prefix + kindIdentity + "<id>-" + f.field + " where <id> " + err.Error())
		}
		b, ok := p.ids[id]
		if !ok {
			b = &idBlock{Identity: Identity{Name: id}, set: map[string]bool{}, firstKey: key}
			if p.ids == nil {
				p.ids = map[string]*idBlock{}
			}
			p.ids[id] = b
		}
		b.set[f.field] = true
		return f.set(&b.Identity, val)
	}
	return invalid("a key of the form " + Prefix + kindIdentity + "<id>-<field> where <field> is one of " + identityFieldNames())
}

// usesDefault reports whether an output or the templates ConfigMap renders with the default
// identity (the single-role annotations).
func (p *parser) usesDefault() bool {
	for _, o := range p.outputs {
		if o.Identity == DefaultIdentity {
			return true
		}
	}
	return p.envUsesDefault() || p.req.TemplatesConfigMap != "" && (p.templatesIdentity == "" || p.templatesIdentity == DefaultIdentity)
}

// resolveIdentities completes the named identities from the default one and the operator's
// defaults, checks every reference, and assigns token files to the audiences a pod asked for.
// def is the default identity, already complete; include says whether it is part of the config.
func (p *parser) resolveIdentities(def Identity, include bool, d Defaults) error {
	cfg := p.cfg
	cfg.Identities = cfg.Identities[:0]
	if include {
		cfg.Identities = append(cfg.Identities, def)
	}
	ids := make([]string, 0, len(p.ids))
	for id := range p.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, name := range ids {
		b := p.ids[name]
		id := b.Identity
		key := func(field string) string { return Prefix + kindIdentity + name + "-" + field }
		if id.Role == "" {
			return bad(key("role"), "", "the Vault role of identity "+strconv.Quote(name)+", since "+b.firstKey+" defines it")
		}
		if !b.set["auth-type"] {
			id.Method = MethodKubernetes
		}
		if !b.set["auth-path"] {
			id.AuthPath = defaultAuthPath(id.Method, d)
		}
		if !b.set["address"] {
			id.Address = def.Address
		}
		if id.Address == "" {
			return bad(key("address"), "", "a Vault address, since neither "+AnnotationAddress+" nor the webhook (--vault-address) gives one")
		}
		if !b.set["namespace"] {
			id.Namespace = def.Namespace
		}
		if !b.set["tls-server-name"] {
			id.TLSServerName = def.TLSServerName
		}
		if !b.set["tls-skip-verify"] {
			id.TLSSkipVerify = def.TLSSkipVerify
		}
		id.CACertFile = def.CACertFile
		cfg.Identities = append(cfg.Identities, id)
	}
	defined := func(name string) bool {
		_, ok := cfg.Identity(name)
		return ok
	}
	for _, o := range p.outputs {
		if o.identityKey != "" && !defined(o.Identity) {
			return bad(o.identityKey, o.Identity, p.knownIdentities())
		}
	}
	if p.templatesIdentityKey != "" {
		if p.req.TemplatesConfigMap == "" {
			return bad(p.templatesIdentityKey, p.templatesIdentity, "no value unless "+AnnotationTemplatesConfigMap+" names the templates ConfigMap")
		}
		if !defined(p.templatesIdentity) {
			return bad(p.templatesIdentityKey, p.templatesIdentity, p.knownIdentities())
		}
		cfg.TemplatesIdentity = p.templatesIdentity
	}
	assignTokenFiles(cfg.Identities)
	return nil
}

// knownIdentities is the expectation of a reference to an identity that is not defined.
func (p *parser) knownIdentities() string {
	names := []string{strconv.Quote(DefaultIdentity) + " (the single-role annotations)"}
	for id := range p.ids {
		names = append(names, strconv.Quote(id))
	}
	sort.Strings(names[1:])
	return "an identity defined by " + Prefix + kindIdentity + "<id>-role; this pod defines " + strings.Join(names, ", ")
}

// defaultAuthPath is the mount an identity logs in at when it names none: Vault's default
// mount for jwt, the operator's --auth-path for kubernetes.
func defaultAuthPath(method string, d Defaults) string {
	if method == MethodJWT {
		return DefaultJWTAuthPath
	}
	return d.AuthPath
}

// assignTokenFiles gives each audience a pod asked for its own projected token file (the patch
// projects one token per file): token-1, token-2, … in audience order, so the same
// annotations always give the same files. Identities without an audience use the token of
// the webhook's --token-audience.
func assignTokenFiles(ids []Identity) {
	var auds []string
	for _, id := range ids {
		if id.Audience != "" {
			auds = append(auds, id.Audience)
		}
	}
	sort.Strings(auds)
	auds = compactStrings(auds)
	for i := range ids {
		if a := ids[i].Audience; a != "" {
			ids[i].TokenFile = ServiceAccountTokenDir + "/token-" + strconv.Itoa(sort.SearchStrings(auds, a)+1)
		}
	}
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
