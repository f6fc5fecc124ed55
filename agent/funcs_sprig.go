package agent

import (
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// sprigFuncs is sprig's hermetic text function map (no env, no expandenv) under the sprig_
// prefix, exactly as consul-template v0.41.1 registers it, from the sprig version it pins
// (v3.3.0). Built once, on the first render: the webhook, the same binary, never pays for it.
var sprigFuncs = sync.OnceValue(func() template.FuncMap {
	h := sprig.HermeticTxtFuncMap()
	m := make(template.FuncMap, len(h))
	for k, v := range h {
		m["sprig_"+k] = v
	}
	return m
})

func addSprig(m template.FuncMap) {
	for k, v := range sprigFuncs() {
		m[k] = v
	}
}
