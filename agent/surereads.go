package agent

import (
	"text/template/parse"
)

// sureReads lists the paths a template reads with `secret "<literal path>"` whatever its data:
// in an action at the top level of the template, or in the pipeline of a top-level if, with or
// range (`{{ with secret "kv/data/app" }}`, `{{ $s := secret "kv/a" }}`), which runs before any
// branch is chosen. A read in a branch's body, in a defined template, with write arguments,
// with a path built at render time (a variable, printf) or inside another function's arguments
// (and/or stop early) is left out: it may not happen, or not at a path known now. The first
// pass reads these at once (prefetch), as consul-template fetches a template's dependencies
// together. A template that does not parse has none: rendering reports its error.
func sureReads(name, text string) []string {
	t := parse.New(name)
	t.Mode = parse.SkipFuncCheck
	if _, err := t.Parse(text, "", "", map[string]*parse.Tree{}); err != nil || t.Root == nil {
		return nil
	}
	var paths []string
	for _, n := range t.Root.Nodes {
		var pipe *parse.PipeNode
		switch n := n.(type) {
		case *parse.ActionNode:
			pipe = n.Pipe
		case *parse.IfNode:
			pipe = n.Pipe
		case *parse.WithNode:
			pipe = n.Pipe
		case *parse.RangeNode:
			pipe = n.Pipe
		}
		if pipe == nil {
			continue
		}
		for _, cmd := range pipe.Cmds {
			if p, ok := literalSecretRead(cmd); ok {
				paths = append(paths, p)
			}
		}
	}
	return paths
}

// literalSecretRead is the path of a command `secret "<path>"` (no write arguments).
func literalSecretRead(cmd *parse.CommandNode) (string, bool) {
	if len(cmd.Args) != 2 {
		return "", false
	}
	fn, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok || fn.Ident != "secret" {
		return "", false
	}
	s, ok := cmd.Args[1].(*parse.StringNode)
	if !ok || s.Text == "" {
		return "", false
	}
	return s.Text, true
}
