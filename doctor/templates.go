package doctor

import (
	"fmt"
	"text/template/parse"
)

// vaultUse is one Vault call a template makes: a path and the capability it needs.
type vaultUse struct {
	Path       string
	Capability string // "read" for `secret "p"`, "update" for `secret "p" "k=v"`
}

// templateUses finds the `secret` calls of a consul-template template without executing it:
// each call with a literal path is a vaultUse; dynamic counts calls whose path is computed
// (doctor cannot know it without the values). Functions are not resolved, so a template using
// any function parses.
func templateUses(name, text string) (uses []vaultUse, dynamic int, err error) {
	t := parse.New(name)
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "", "", trees); err != nil {
		return nil, 0, fmt.Errorf("template %s: %w", name, err)
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.RangeNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.WithNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.TemplateNode:
			walk(n.Pipe)
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			if len(n.Args) == 0 {
				return
			}
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "secret" {
				if len(n.Args) > 1 {
					if s, ok := n.Args[1].(*parse.StringNode); ok {
						capability := "read"
						if len(n.Args) > 2 {
							capability = "update"
						}
						uses = append(uses, vaultUse{Path: s.Text, Capability: capability})
					} else {
						dynamic++
					}
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	for _, tree := range trees {
		walk(tree.Root)
	}
	return uses, dynamic, nil
}

func walkBranch(b *parse.BranchNode, walk func(parse.Node)) {
	walk(b.Pipe)
	walk(b.List)
	if b.ElseList != nil {
		walk(b.ElseList)
	}
}
