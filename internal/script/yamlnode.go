package script

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/words"
)

// pos returns the position of a YAML node in file.
func (d *diags) pos(n *yaml.Node) calls.Pos {
	if n == nil {
		return calls.Pos{File: d.file}
	}
	return calls.Pos{File: d.file, Line: n.Line, Col: n.Column}
}

// errorf records a diagnostic at n.
func (d *diags) errorf(n *yaml.Node, format string, args ...any) {
	d.add(d.pos(n), format, args...)
}

// deref follows aliases and unwraps documents.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case 0: // an empty document
			return nil
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

// pair is one key/value of a YAML mapping.
type pair struct {
	key   string
	knode *yaml.Node
	val   *yaml.Node
}

// pairs returns the entries of a mapping in order, applying `<<` merge keys
// (entries written in the mapping itself win over merged ones) and reporting
// duplicate keys. It returns nil, false after reporting when n is not a
// mapping; a null node is an empty mapping.
func (d *diags) pairs(n *yaml.Node, what string) ([]pair, bool) {
	n = deref(n)
	if n == nil || isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, not %s", what, describeNode(n))
		return nil, false
	}
	var own, merged []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Tag == "!!merge" || (k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Style == 0) {
			src := deref(v)
			var sources []*yaml.Node
			if src != nil && src.Kind == yaml.SequenceNode {
				sources = src.Content
			} else {
				sources = []*yaml.Node{v}
			}
			for _, s := range sources {
				ps, ok := d.pairs(s, "a merged value (<<)")
				if ok {
					merged = append(merged, ps...)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be scalars, not %s", what, describeNode(k))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		own = append(own, pair{key: k.Value, knode: k, val: v})
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			own = append(own, p)
		}
	}
	return own, true
}

// checkKeys reports keys of ps that are not in allowed.
func (d *diags) checkKeys(ps []pair, what string, allowed ...string) {
	for _, p := range ps {
		ok := false
		for _, a := range allowed {
			if p.key == a {
				ok = true
				break
			}
		}
		if !ok {
			d.errorf(p.knode, "unknown key %q in %s%s", p.key, what, words.DidYouMean(p.key, allowed))
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describeNode names the YAML kind of n for error messages.
func describeNode(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		default:
			return fmt.Sprintf("a string (%q)", n.Value)
		}
	}
	return "an unexpected node"
}

// scalarString returns a scalar's text; it reports and returns false for
// mappings and lists.
func (d *diags) scalarString(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(orNode(n), "%s must be a string, not %s", what, describeNode(n))
		return "", false
	}
	return n.Value, true
}

// scalarInt reads a non-negative integer.
func (d *diags) scalarInt(n *yaml.Node, what string) (int, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(orNode(n), "%s must be a whole number, not %s", what, describeNode(n))
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v < 0 || v > math.MaxInt32 {
		d.errorf(n, "%s must be a whole number from 0 to %d, not %s", what, math.MaxInt32, n.Value)
		return 0, false
	}
	return int(v), true
}

// scalarBool reads true or false.
func (d *diags) scalarBool(n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(orNode(n), "%s must be true or false, not %s", what, describeNode(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.errorf(n, "%s: %v", what, err)
		return false, false
	}
	return b, true
}

// orNode keeps error positions usable when a node is missing.
func orNode(n *yaml.Node) *yaml.Node {
	if n == nil {
		return &yaml.Node{}
	}
	return n
}

// scalarJSON converts a YAML scalar to the value encoding/json would give the
// same JSON text: nil, bool, string, or json.Number (integers in decimal,
// floats in shortest form; ±Inf and NaN become the strings protojson uses).
func scalarJSON(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case int:
			return json.Number(strconv.FormatInt(int64(x), 10)), nil
		case int64:
			return json.Number(strconv.FormatInt(x, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(x, 10)), nil
		case float64:
			return floatJSON(x), nil
		}
		return nil, fmt.Errorf("integer %s out of range", n.Value)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return floatJSON(f), nil
	case "!!binary":
		return strings.Join(strings.Fields(n.Value), ""), nil
	default:
		return n.Value, nil
	}
}

func floatJSON(f float64) any {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// yamlJSON converts a YAML tree to JSON-shaped Go values (maps with string
// keys, []any, scalars as scalarJSON gives them).
func (d *diags) yamlJSON(n *yaml.Node) (any, bool) { return d.data(n, false) }

// varsJSON is yamlJSON for `vars`, where the raw-bytes forms (!!binary,
// {base64: ...}, {hex: ...}) become bytes values.
func (d *diags) varsJSON(n *yaml.Node) (any, bool) { return d.data(n, true) }

func (d *diags) data(n *yaml.Node, raw bool) (any, bool) {
	n = deref(n)
	if n == nil {
		return nil, true
	}
	if raw && isBytesForm(n) {
		b, err := rawBytes(n)
		if err != nil {
			d.errorf(n, "vars: %v", err)
			return nil, false
		}
		return bytesVal(b), true
	}
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := scalarJSON(n)
		if err != nil {
			d.errorf(n, "bad value %q: %v", n.Value, err)
			return nil, false
		}
		return v, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for _, c := range n.Content {
			v, good := d.data(c, raw)
			ok = ok && good
			out = append(out, v)
		}
		return out, ok
	case yaml.MappingNode:
		ps, ok := d.pairs(n, "a mapping")
		out := make(map[string]any, len(ps))
		for _, p := range ps {
			v, good := d.data(p.val, raw)
			ok = ok && good
			out[p.key] = v
		}
		return out, ok
	}
	d.errorf(n, "unexpected YAML node")
	return nil, false
}
