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
		buf = appendString(buf, op.Op)
		buf = append(buf, `,"path":`...)
		buf = appendString(buf, op.Path)
		buf = append(buf, `,"value":`...)
		switch v := op.Value.(type) {
		case json.RawMessage:
			buf = append(buf, v...)
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

// appendString appends s as a JSON string: directly when it is plain printable ASCII (our
// paths always are), through encoding/json otherwise.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func appendValue(buf []byte, v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return append(buf, raw...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(buf, b...), nil
}
