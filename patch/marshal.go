package patch

import (
	"encoding/json"
)

// Marshal encodes operations. Pre-encoded values (json.RawMessage, which the Builder emits
// for its large pieces) are copied as they are rather than re-validated by encoding/json.
func Marshal(ops []Operation) ([]byte, error) {
	return AppendMarshal(make([]byte, 0, 8192), ops)
}

// AppendMarshal is Marshal appending to buf, so a server can reuse its buffers.
func AppendMarshal(buf []byte, ops []Operation) ([]byte, error) {
	buf = append(buf, '[')
	for i, op := range ops {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"op":`...)
		buf = AppendJSONString(buf, op.Op)
		buf = append(buf, `,"path":`...)
		buf = AppendJSONString(buf, op.Path)
		buf = append(buf, `,"value":`...)
		switch v := op.Value.(type) {
		case json.RawMessage:
			buf = append(buf, v...)
		case splicedObject:
			buf = v.appendTo(buf)
		case []any:
			buf = append(buf, '[')
			for j, e := range v {
				if j > 0 {
					buf = append(buf, ',')
				}
				var err error
				if buf, err = appendValue(buf, e); err != nil {
					return nil, err
				}
			}
			buf = append(buf, ']')
		default:
			var err error
			if buf, err = appendValue(buf, v); err != nil {
				return nil, err
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, ']'), nil
}

func appendValue(buf []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case json.RawMessage:
		return append(buf, v...), nil
	case splicedObject:
		return v.appendTo(buf), nil
	case string:
		// Annotation values (the agent config is a long JSON string): escaped straight into
		// buf instead of through encoding/json's pooled encoder and a copy.
		return AppendJSONString(buf, v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}

// splicedObject is a JSON object written as the members of head followed by those of tail
// (both encoded objects): our container is its per-pod environment spliced into the memoised
// rest, written straight into the patch buffer rather than joined into a copy first.
type splicedObject struct{ head, tail json.RawMessage }

func (o splicedObject) appendTo(buf []byte) []byte {
	buf = append(buf, o.head[:len(o.head)-1]...)
	if len(o.tail) > 2 { // not "{}"
		buf = append(buf, ',')
		buf = append(buf, o.tail[1:]...)
	} else {
		buf = append(buf, '}')
	}
	return buf
}

// MarshalJSON lets encoding/json encode operations that carry one, as AppendMarshal does.
func (o splicedObject) MarshalJSON() ([]byte, error) { return o.appendTo(nil), nil }
