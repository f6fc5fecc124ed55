package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// publish sets caBundle on every webhook of our configuration whose bundle differs, with a
// strategic merge patch (webhooks merged by name) conditional on the resourceVersion read.
func (s *SelfManaged) publish(ctx context.Context, bundle []byte) error {
	if s.opts.WebhookConfigName == "" {
		s.trusted = bundle
		return nil
	}
	for attempt := 0; attempt < maxConflicts; attempt++ {
		mwc, err := s.client.GetWebhookConfig(ctx, s.opts.WebhookConfigName)
		if apierrors.IsNotFound(err) {
			// Installed a moment later, or deleted: the next sync tries again.
			if !s.missingConfig {
				s.log.Warn("MutatingWebhookConfiguration not found; caBundle will be set once it exists", "webhook_configuration", s.opts.WebhookConfigName)
			}
			s.missingConfig = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfigName, err)
		}
		s.missingConfig = false
		type clientConfig struct {
			CABundle []byte `json:"caBundle"`
		}
		type webhook struct {
			Name         string       `json:"name"`
			ClientConfig clientConfig `json:"clientConfig"`
		}
		var stale []webhook
		for _, wh := range mwc.Webhooks {
			if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
				stale = append(stale, webhook{Name: wh.Name, ClientConfig: clientConfig{CABundle: bundle}})
			}
		}
		if len(stale) == 0 {
			s.trusted = bundle
			return nil
		}
		patch := map[string]any{"webhooks": stale}
		if mwc.ResourceVersion != "" {
			patch["metadata"] = map[string]any{"resourceVersion": mwc.ResourceVersion}
		}
		body, err := json.Marshal(patch)
		if err != nil {
			return fmt.Errorf("encode caBundle patch: %w", err)
		}
		if err := s.client.PatchWebhookConfig(ctx, s.opts.WebhookConfigName, body); err != nil {
			if apierrors.IsConflict(err) {
				s.log.Debug("MutatingWebhookConfiguration changed while we patched it; re-reading", "error", err.Error())
				continue
			}
			return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfigName, err)
		}
		s.bundleWrites.Add(1)
		s.trusted = bundle
		s.log.Info("caBundle updated", "webhook_configuration", s.opts.WebhookConfigName, "webhooks", len(stale), "cas", describe(mustParse(bundle)))
		return nil
	}
	return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: it kept changing under us (%d conflicts in a row)", s.opts.WebhookConfigName, maxConflicts)
}

// liveCAs are the unexpired CAs in the caBundle of our configuration's webhooks, as the API
// server has them now (none when there is no configuration, or we do not manage caBundle).
// A bundle that does not parse holds no CA we could keep trusting.
func (s *SelfManaged) liveCAs(ctx context.Context, now time.Time) ([]*x509.Certificate, error) {
	if s.opts.WebhookConfigName == "" {
		return nil, nil
	}
	mwc, err := s.client.GetWebhookConfig(ctx, s.opts.WebhookConfigName)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get MutatingWebhookConfiguration %s for its caBundle: %w", s.opts.WebhookConfigName, err)
	}
	var out []*x509.Certificate
	for _, wh := range mwc.Webhooks {
		certs, err := parseCerts(wh.ClientConfig.CABundle)
		if err != nil {
			continue
		}
		for _, c := range certs {
			if c.IsCA && now.Before(c.NotAfter) && !slices.ContainsFunc(out, c.Equal) {
				out = append(out, c)
			}
		}
	}
	if len(out) > 0 {
		s.log.Info("keeping the CAs of the live caBundle trusted next to the new CA", "cas", describe(out))
	}
	return out, nil
}
