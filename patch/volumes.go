package patch

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vault-injector/vault-injector/agentconfig"
)

func (b *podBuild) volumes() []corev1.Volume {
	mem := func(name string, limit resource.Quantity) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &limit}}}
	}
	exp := b.settings.TokenExpirationSeconds
	vols := []corev1.Volume{
		mem(SecretsVolume, secretsVolumeSize),
		mem(HomeVolume, homeVolumeSize),
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: b.tokenProjections(exp)}}},
		{Name: ConfigVolume, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     strings.TrimPrefix(agentconfig.ConfigFile, agentconfig.ConfigDir+"/"),
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + agentconfig.AnnotationAgentConfig + "']"},
			}}}}},
	}
	if cm := b.req.TemplatesConfigMap; cm != "" {
		vols = append(vols, corev1.Volume{Name: TemplatesVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}}})
	}
	if cm := b.req.CAConfigMap; cm != "" {
		vols = append(vols, corev1.Volume{Name: CAVolume, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm},
				Items: []corev1.KeyToPath{{Key: b.req.CAKey, Path: strings.TrimPrefix(agentconfig.CAFile, agentconfig.CADir+"/")}}}}})
	}
	return append(vols, b.envVolumes()...)
}

// tokenProjections is the service-account token with the webhook's audience, plus one token
// per audience the pod's identities asked for, each in the file agentconfig assigned to it.
func (b *podBuild) tokenProjections(exp int64) []corev1.VolumeProjection {
	out := []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
		Audience: b.settings.TokenAudience, ExpirationSeconds: &exp, Path: "token"}}}
	seen := map[string]bool{}
	for _, id := range b.req.Agent.Identities {
		if id.TokenFile == "" || seen[id.TokenFile] {
			continue
		}
		seen[id.TokenFile] = true
		out = append(out, corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: id.Audience, ExpirationSeconds: &exp, Path: path.Base(id.TokenFile)}})
	}
	return out
}

// extraTokens reports whether the pod's identities need tokens of their own audiences.
func extraTokens(req *agentconfig.Request) bool {
	for _, id := range req.Agent.Identities {
		if id.TokenFile != "" {
			return true
		}
	}
	return false
}
