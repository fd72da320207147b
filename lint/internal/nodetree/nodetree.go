// Package nodetree parses the text form of PostgreSQL's pg_node_tree (pg_policy.polqual, pg_index.indpred
// and the like) into a generic tree.
//
// The reader knows no node type: it follows the tokenizer of PostgreSQL's src/backend/nodes/read.c, so
// it keeps working across server versions that add or rename fields. A node is "{TYPE :field value ...}";
// a value is a node, a parenthesized list, "<>" (NULL) or one or more plain tokens ("4", or
// "1 [ 1 0 0 0 0 0 0 0 ]" for a Const datum).
package nodetree

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrSyntax is returned (wrapped) for text that is not a node tree. Use errors.Is.
var ErrSyntax = errors.New("nodetree: syntax error")

// maxDepth bounds nesting so that hostile input cannot exhaust the stack; real policy expressions nest
// a few dozen levels.
const maxDepth = 1000

// Node is one "{TYPE ...}" of a node tree.
type Node struct {
	Type   string
	Fields []Field
}

// Field is one ":name value" of a node.
type Field struct {
	Name  string
	Value Value
}

// Value is a field's value or a list element: exactly one of Node, List (when IsList) or Tokens is set;
// none is set for "<>".
type Value struct {
	Node   *Node
	List   []Value
	IsList bool
	// Tokens of a plain value, still escaped as PostgreSQL wrote them.
	Tokens []string
}

// Parse parses a node tree whose top is a single node.
func Parse(s string) (*Node, error) {
	p := &parser{toks: tokenize(s)}
	if len(p.toks) == 0 || p.toks[0] != "{" {
		return nil, fmt.Errorf("%w: the tree does not start with a node", ErrSyntax)
	}
	n, err := p.node(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("%w: trailing %q", ErrSyntax, p.toks[p.pos])
	}
	return n, nil
}

// tokenize follows pg_strtok: braces and parentheses are tokens of their own, everything else splits at
// white space, and a backslash protects the character after it.
func tokenize(s string) []string {
	var toks []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch c {
		case ' ', '\n', '\t':
			i++
		case '(', ')', '{', '}':
			toks = append(toks, s[i:i+1])
			i++
		default:
			j := i
			for j < len(s) {
				c := s[j]
				if c == ' ' || c == '\n' || c == '\t' || c == '(' || c == ')' || c == '{' || c == '}' {
					break
				}
				if c == '\\' && j+1 < len(s) {
					j += 2
				} else {
					j++
				}
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

type parser struct {
	toks []string
	pos  int
}

func (p *parser) peek() (string, bool) {
	if p.pos >= len(p.toks) {
		return "", false
	}
	return p.toks[p.pos], true
}

func isFieldName(tok string) bool { return len(tok) > 1 && tok[0] == ':' }

// node parses "{TYPE :field value ...}"; the current token is "{".
func (p *parser) node(depth int) (*Node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrSyntax, maxDepth)
	}
	p.pos++ // "{"
	typ, ok := p.peek()
	if !ok || typ == "{" || typ == "}" || typ == "(" || typ == ")" || isFieldName(typ) {
		return nil, fmt.Errorf("%w: node without a type", ErrSyntax)
	}
	p.pos++
	n := &Node{Type: typ}
	for {
		tok, ok := p.peek()
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: unterminated node %s", ErrSyntax, typ)
		case tok == "}":
			p.pos++
			return n, nil
		case isFieldName(tok):
			p.pos++
			v, err := p.fieldValue(depth)
			if err != nil {
				return nil, err
			}
			n.Fields = append(n.Fields, Field{Name: tok[1:], Value: v})
		default:
			return nil, fmt.Errorf("%w: %q where a field name belongs in node %s", ErrSyntax, tok, typ)
		}
	}
}

// fieldValue parses what follows ":name": a node, a list, "<>", or plain tokens up to the next field.
func (p *parser) fieldValue(depth int) (Value, error) {
	tok, ok := p.peek()
	if !ok {
		return Value{}, fmt.Errorf("%w: field without a value at the end", ErrSyntax)
	}
	switch {
	case tok == "{":
		n, err := p.node(depth + 1)
		return Value{Node: n}, err
	case tok == "(":
		return p.list(depth + 1)
	case tok == "<>":
		p.pos++
		return Value{}, nil
	}
	var v Value
	for {
		tok, ok := p.peek()
		if !ok || tok == "}" || isFieldName(tok) {
			return v, nil
		}
		if tok == "{" || tok == "(" || tok == ")" {
			return Value{}, fmt.Errorf("%w: %q inside a plain value", ErrSyntax, tok)
		}
		v.Tokens = append(v.Tokens, tok)
		p.pos++
	}
}

// list parses "( element ... )"; the current token is "(".
func (p *parser) list(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, fmt.Errorf("%w: nested deeper than %d", ErrSyntax, maxDepth)
	}
	p.pos++ // "("
	v := Value{IsList: true}
	for {
		tok, ok := p.peek()
		switch {
		case !ok:
			return Value{}, fmt.Errorf("%w: unterminated list", ErrSyntax)
		case tok == ")":
			p.pos++
			return v, nil
		case tok == "{":
			n, err := p.node(depth + 1)
			if err != nil {
				return Value{}, err
			}
			v.List = append(v.List, Value{Node: n})
		case tok == "(":
			e, err := p.list(depth + 1)
			if err != nil {
				return Value{}, err
			}
			v.List = append(v.List, e)
		case tok == "}":
			return Value{}, fmt.Errorf("%w: \"}\" inside a list", ErrSyntax)
		case tok == "<>":
			p.pos++
			v.List = append(v.List, Value{})
		default:
			p.pos++
			v.List = append(v.List, Value{Tokens: []string{tok}})
		}
	}
}

// Get returns the value of the field name, and whether n has it.
func (n *Node) Get(name string) (Value, bool) {
	for _, f := range n.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return Value{}, false
}

// Token returns the first token of the plain field name, or "" when it is absent, NULL or not plain.
func (n *Node) Token(name string) string {
	v, _ := n.Get(name)
	if len(v.Tokens) == 0 {
		return ""
	}
	return v.Tokens[0]
}

// Int returns the plain field name as an integer.
func (n *Node) Int(name string) (int64, bool) {
	i, err := strconv.ParseInt(n.Token(name), 10, 64)
	return i, err == nil
}

// Child returns the node held by field name, or nil.
func (n *Node) Child(name string) *Node {
	v, _ := n.Get(name)
	return v.Node
}

// Nodes returns the nodes directly in field name: the node itself, or the node elements of a list.
func (n *Node) Nodes(name string) []*Node {
	v, _ := n.Get(name)
	if v.Node != nil {
		return []*Node{v.Node}
	}
	var out []*Node
	for _, e := range v.List {
		if e.Node != nil {
			out = append(out, e.Node)
		}
	}
	return out
}

// IsNull reports whether field name is absent or "<>" (PostgreSQL writes an empty list as "<>" too).
func (n *Node) IsNull(name string) bool {
	v, _ := n.Get(name)
	return v.Node == nil && !v.IsList && len(v.Tokens) == 0
}

// Walk calls fn for n and every node below it, depth first, with n's ancestors (outermost first; fn must
// not keep the slice). When fn returns false, Walk skips that node's children.
func Walk(n *Node, fn func(n *Node, ancestors []*Node) bool) {
	walk(n, nil, fn)
}

func walk(n *Node, anc []*Node, fn func(*Node, []*Node) bool) {
	if !fn(n, anc) {
		return
	}
	anc = append(anc, n)
	for _, f := range n.Fields {
		walkValue(f.Value, anc, fn)
	}
}

func walkValue(v Value, anc []*Node, fn func(*Node, []*Node) bool) {
	if v.Node != nil {
		walk(v.Node, slices.Clip(anc), fn)
	}
	for _, e := range v.List {
		walkValue(e, anc, fn)
	}
}

// String writes n back in the node tree syntax, normalized to single spaces: Parse(n.String()) gives a
// tree equal to n.
func (n *Node) String() string {
	var b strings.Builder
	n.write(&b)
	return b.String()
}

func (n *Node) write(b *strings.Builder) {
	b.WriteString("{")
	b.WriteString(n.Type)
	for _, f := range n.Fields {
		b.WriteString(" :")
		b.WriteString(f.Name)
		b.WriteString(" ")
		f.Value.write(b)
	}
	b.WriteString("}")
}

func (v Value) write(b *strings.Builder) {
	switch {
	case v.Node != nil:
		v.Node.write(b)
	case v.IsList:
		b.WriteString("(")
		for i, e := range v.List {
			if i > 0 {
				b.WriteString(" ")
			}
			e.write(b)
		}
		b.WriteString(")")
	case len(v.Tokens) == 0:
		b.WriteString("<>")
	default:
		b.WriteString(strings.Join(v.Tokens, " "))
	}
}
