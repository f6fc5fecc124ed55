package patch

import (
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// containerFields is Container without its decoding method: what the method falls back to.
type containerFields Container

// UnmarshalJSONFrom decodes a container for the webhook's one-pass review decoder
// (encoding/json/v2). App containers are mostly members we never read (image, ports,
// resources, probes...), and the reflective decoder looks each unknown name up twice (exact,
// then case-folded) before skipping it: the profile of a different pod per request showed
// that. Here a member is read by its exact name, as the reflective decoder matches it, and
// anything else is skipped unparsed. Anything but an object (null included) is left to the
// reflective decoder, so it is handled and reported as before.
func (c *Container) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '{' {
		return jsonv2.UnmarshalDecode(dec, (*containerFields)(c))
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return err
		}
		switch name.String() {
		case "name":
			err = jsonv2.UnmarshalDecode(dec, &c.Name)
		case "env":
			err = jsonv2.UnmarshalDecode(dec, &c.Env)
		case "envFrom":
			err = jsonv2.UnmarshalDecode(dec, &c.EnvFrom)
		case "volumeMounts":
			err = jsonv2.UnmarshalDecode(dec, &c.VolumeMounts)
		case "restartPolicy":
			err = jsonv2.UnmarshalDecode(dec, &c.RestartPolicy)
		case "command":
			err = jsonv2.UnmarshalDecode(dec, &c.Command)
		case "livenessProbe":
			err = jsonv2.UnmarshalDecode(dec, &c.LivenessProbe)
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
