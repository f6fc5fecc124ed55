package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vault-injector/vault-injector/agentconfig"
)

// passResult is what one render pass did.
type passResult struct {
	// changed lists the files written; replaced those of them that existed before (the app may
	// have read the old content: notify).
	changed, replaced []string
	// envReplaced: the env file changed after app containers may have started with it.
	envReplaced bool
}

// pass renders every template once, fetching what the cache lacks, and writes changed files.
// Each template stands alone: a failing one leaves its file as it was, and its error joins the
// returned error while the others are still rendered and written.
func (a *Agent) pass(ctx context.Context) (passResult, error) {
	var res passResult
	var errs []error
	templates := a.templates()
	if !a.prefetchDone {
		// The process's first pass only: it is what the pod waits for. Later passes read
		// in turn, on the connections the client keeps (two).
		a.prefetchDone = true
		a.prefetch(ctx, templates)
		defer a.keepPrefetched()
	}
	for _, t := range templates {
		if t.err != nil {
			errs = append(errs, t.err)
			continue
		}
		if err := a.renderOne(ctx, t, &res); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if a.cfg.Env != nil && ctx.Err() == nil {
		if err := a.renderEnv(ctx, &res); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (a *Agent) renderOne(ctx context.Context, t boundTemplate, res *passResult) error {
	var used []string
	out, err := render(ctx, t.tmpl, func(ctx context.Context, path string, data map[string]any) (*Secret, error) {
		s, key, err := a.fetch(ctx, t.identity, path, data)
		used = append(used, key)
		return s, err
	})
	if err != nil {
		// Retry with fresh data: the value that broke the template may be fixed in Vault by
		// the next attempt. Leased secrets stay: fetching them again would issue a new
		// credential, and they are renewed, so they are current anyway.
		a.dropUnleased(used)
		return err
	}
	outcome, err := writeFile(a.cfg.SecretsDir, t.file, out, t.perms)
	if err != nil {
		return &permanentError{fmt.Errorf("write %s: %w", t.file, err)}
	}
	if res.wrote(t.file, outcome) {
		res.replaced = append(res.replaced, t.file)
	}
	return nil
}

// wrote records a file writeFile created or replaced, and reports whether it replaced one
// (which the app may have read already).
func (r *passResult) wrote(file string, o writeOutcome) bool {
	if o != unchanged {
		r.changed = append(r.changed, file)
	}
	return o == replaced
}

// annotationOutput returns the output of the pod's annotations that writes file, or below it.
func (a *Agent) annotationOutput(file string) (agentconfig.Secret, bool) {
	for _, s := range a.cfg.Secrets {
		if s.File == file || strings.HasPrefix(s.File, file+"/") {
			return s, true
		}
	}
	return agentconfig.Secret{}, false
}

type boundTemplate struct {
	tmpl
	identity string
	// defaultPath is the output's path when the template is its default one, which reads
	// that path and nothing else.
	defaultPath string
	err         error
}

// templates lists what to render: the secrets of the config, then the ConfigMap's templates.
func (a *Agent) templates() []boundTemplate {
	var out []boundTemplate
	for _, s := range a.cfg.Secrets {
		t := boundTemplate{tmpl: tmpl{name: s.Name, text: s.Template, file: s.File, perms: os.FileMode(s.Perms)}, identity: s.Identity}
		if s.Template == "" {
			t.text, t.defaultPath = defaultTemplate(s.Path), s.Path
		}
		out = append(out, t)
	}
	if a.cfg.TemplatesDir == "" {
		return out
	}
	ents, err := os.ReadDir(a.cfg.TemplatesDir)
	if err != nil {
		return append(out, boundTemplate{err: &permanentError{fmt.Errorf("read templates directory: %w", err)}})
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || e.IsDir() && !strings.HasSuffix(n, "tmpl") {
			continue
		}
		if strings.HasSuffix(n, ".ctmpl") || strings.HasSuffix(n, ".tmpl") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(a.cfg.TemplatesDir, n))
		if err != nil {
			out = append(out, boundTemplate{err: &permanentError{fmt.Errorf("read template %s: %w", n, err)}})
			continue
		}
		file := strings.TrimSuffix(strings.TrimSuffix(n, ".ctmpl"), ".tmpl")
		if other, ok := a.annotationOutput(file); ok {
			// The webhook cannot see the ConfigMap's keys at admission; refuse here rather
			// than let two outputs overwrite each other's file at every pass.
			out = append(out, boundTemplate{err: &permanentError{fmt.Errorf(
				"template %s of the templates ConfigMap writes %s, which clashes with the file %s of annotation output %q: rename the ConfigMap key or set file-%s",
				n, file, other.File, other.Name, other.Name)}})
			continue
		}
		out = append(out, boundTemplate{tmpl: tmpl{name: n, text: string(b), file: file, perms: 0o644}, identity: a.cfg.TemplatesIdentity})
	}
	return out
}
