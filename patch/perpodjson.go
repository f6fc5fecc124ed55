package patch

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Hand-written encoders for the two per-pod values Build encodes on every admission: the
// status annotation and the app environment copied into our containers. encoding/json spent
// ~8 µs of a ~90 µs admission on them by reflection. Each writes exactly what json.Marshal
// writes (perpodjson_test.go compares them), and the env encoder hands any shape it does not
// know to json.Marshal.

// appendStatus appends st as json.Marshal encodes it.
func appendStatus(buf []byte, st *Status) []byte {
	buf = append(buf, `{"version":`...)
	buf = strconv.AppendInt(buf, int64(st.Version), 10)
	buf = append(buf, `,"style":`...)
	buf = AppendJSONString(buf, string(st.Style))
	buf = appendStrings(buf, `,"initContainers":`, st.InitContainers, false)
	buf = appendStrings(buf, `,"containers":`, st.Containers, true)
	buf = appendStrings(buf, `,"volumes":`, st.Volumes, false)
	buf = appendStrings(buf, `,"appContainers":`, st.AppContainers, false)
	if st.EnvStyle != "" {
		buf = append(buf, `,"envStyle":`...)
		buf = AppendJSONString(buf, string(st.EnvStyle))
	}
	return append(buf, '}')
}

// appendStrings appends a member holding ss; a nil slice is null, or nothing when omitEmpty
// (and so is an empty one), as encoding/json does.
func appendStrings(buf []byte, member string, ss []string, omitEmpty bool) []byte {
	if omitEmpty && len(ss) == 0 {
		return buf
	}
	buf = append(buf, member...)
	if ss == nil {
		return append(buf, "null"...)
	}
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendJSONString(buf, s)
	}
	return append(buf, ']')
}

// appendEnvObject appends {"env":[…],"envFrom":[…]} (each member omitted when empty) as
// json.Marshal encodes it, and reports false, having appended nothing, when an entry has a
// shape it does not write: the caller then uses json.Marshal.
func appendEnvObject(buf []byte, env []corev1.EnvVar, envFrom []corev1.EnvFromSource) ([]byte, bool) {
	start := len(buf)
	buf = append(buf, '{')
	if len(env) > 0 {
		buf = append(buf, `"env":[`...)
		for i := range env {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = appendEnvVar(buf, &env[i]); !ok {
				return buf[:start], false
			}
		}
		buf = append(buf, ']')
	}
	if len(envFrom) > 0 {
		if len(env) > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `"envFrom":[`...)
		for i, f := range envFrom {
			if f.SecretRef != nil || f.ConfigMapRef == nil {
				return buf[:start], false
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '{')
			if f.Prefix != "" {
				buf = append(buf, `"prefix":`...)
				buf = AppendJSONString(buf, f.Prefix)
				buf = append(buf, ',')
			}
			buf = append(buf, `"configMapRef":{`...)
			buf = appendRef(buf, f.ConfigMapRef.Name, nil, f.ConfigMapRef.Optional)
			buf = append(buf, "}}"...)
		}
		buf = append(buf, ']')
	}
	return append(buf, '}'), true
}

// appendEnvVar writes an entry with a value, a fieldRef or a configMapKeyRef: what appEnv
// copies from the usual pod. Other sources are left to json.Marshal.
func appendEnvVar(buf []byte, e *corev1.EnvVar) ([]byte, bool) {
	buf = append(buf, `{"name":`...)
	buf = AppendJSONString(buf, e.Name)
	if e.Value != "" {
		buf = append(buf, `,"value":`...)
		buf = AppendJSONString(buf, e.Value)
	}
	if vf := e.ValueFrom; vf != nil {
		switch {
		case vf.ResourceFieldRef != nil || vf.SecretKeyRef != nil || vf.FileKeyRef != nil:
			return buf, false
		case vf.FieldRef != nil && vf.ConfigMapKeyRef == nil:
			buf = append(buf, `,"valueFrom":{"fieldRef":{`...)
			if v := vf.FieldRef.APIVersion; v != "" {
				buf = append(buf, `"apiVersion":`...)
				buf = AppendJSONString(buf, v)
				buf = append(buf, ',')
			}
			buf = append(buf, `"fieldPath":`...)
			buf = AppendJSONString(buf, vf.FieldRef.FieldPath)
			buf = append(buf, "}}"...)
		case vf.ConfigMapKeyRef != nil && vf.FieldRef == nil:
			r := vf.ConfigMapKeyRef
			buf = append(buf, `,"valueFrom":{"configMapKeyRef":{`...)
			buf = appendRef(buf, r.Name, &r.Key, r.Optional)
			buf = append(buf, "}}"...)
		default:
			return buf, false
		}
	}
	return append(buf, '}'), true
}

// appendRef writes the members of a LocalObjectReference (name, omitted when empty), then a
// key selector's key when key is non-nil (always written, even empty), then optional when set.
func appendRef(buf []byte, name string, key *string, optional *bool) []byte {
	sep := false
	if name != "" {
		buf = append(buf, `"name":`...)
		buf = AppendJSONString(buf, name)
		sep = true
	}
	if key != nil {
		if sep {
			buf = append(buf, ',')
		}
		buf = append(buf, `"key":`...)
		buf = AppendJSONString(buf, *key)
		sep = true
	}
	if optional != nil {
		if sep {
			buf = append(buf, ',')
		}
		buf = strconv.AppendBool(append(buf, `"optional":`...), *optional)
	}
	return buf
}
