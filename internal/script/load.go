package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// Config tells Load what a script is checked against.
type Config struct {
	// Upstream is the schema of the services the upstream (bcctl serve, or
	// the server bcctl call talks to) offers: the methods of `rules`, and of
	// `call` steps inside `backchannel` rules. Required.
	Upstream Schema
	// Backchannel is the schema of the services peers offer on their
	// backchannel: the methods of `backchannel` rules, and of `call` steps
	// inside `rules` and `on_connect`. Nil means Upstream.
	Backchannel Schema
	// Relay says the script runs in bcctl proxy: rules may `relay` the
	// calls they match to their real callee (and change the answer), and a
	// call no rule matches is relayed as it is.
	Relay bool
}

// Section names the part of a script a rule belongs to.
type Section string

// The rule sections of a script.
const (
	// SectionRules holds the rules that answer forward calls (bcctl serve).
	SectionRules Section = "rules"
	// SectionBackchannel holds the rules that answer reverse calls on a
	// client's backchannel (bcctl call/connect --answer).
	SectionBackchannel Section = "backchannel"
)

// Script is a loaded, validated script. It is immutable and safe to share;
// the use counts of `times` live in the Engine that runs it.
type Script struct {
	// Name is the file name (or the name given to Parse).
	Name string
	// Rules answer forward calls, in order.
	Rules []*Rule
	// Backchannel rules answer reverse calls, in order.
	Backchannel []*Rule
	// Expectations are the `expect` entries.
	Expectations []*Expectation

	sidechannels []*SidechannelAnswer
	// none is set for the script of no file (Parse with a nil source): a
	// call no rule matches was not given a script at all.
	none bool
	// sections are the top-level keys the file names.
	sections     map[string]bool
	onConnect    []*step
	onConnectPos calls.Pos
	vars         map[string]any
	upTypes      dynamic.TypeResolver
	backTypes    dynamic.TypeResolver
}

// HasOnConnect reports whether the script has on_connect steps.
func (s *Script) HasOnConnect() bool { return len(s.onConnect) > 0 }

// Empty reports whether the script does nothing and expects nothing
// without saying so: no rules of any kind, no on_connect steps, no
// expectations, and no `rules`, `backchannel` or `expect` key in the file
// (an empty file, or one of comments or vars only). A file that wants no
// rules says `rules: []`.
func (s *Script) Empty() bool {
	return len(s.Rules) == 0 && len(s.Backchannel) == 0 && len(s.sidechannels) == 0 &&
		len(s.onConnect) == 0 && len(s.Expectations) == 0 &&
		!s.sections["rules"] && !s.sections["backchannel"] && !s.sections["expect"]
}

// section returns the rules of sec.
func (s *Script) section(sec Section) []*Rule {
	if sec == SectionBackchannel {
		return s.Backchannel
	}
	return s.Rules
}

// Top-level keys of a script.
var topKeys = []string{"vars", "rules", "backchannel", "sidechannel", "on_connect", "expect"}

// LoadFile reads and validates the script at path.
func LoadFile(ctx context.Context, path string, cfg Config) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	return Parse(ctx, path, src, cfg)
}

// Parse validates the script src; name is used in error positions. A nil
// src is the script of no file, with no rules: a call no rule matches is
// told that no script was given. The error is a *LoadError listing every
// problem found (it wraps ErrInvalidScript), or an error from the schema.
func Parse(ctx context.Context, name string, src []byte, cfg Config) (*Script, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("script: Config.Upstream is nil: a script needs a schema to be checked against")
	}
	if cfg.Backchannel == nil {
		cfg.Backchannel = cfg.Upstream
	}
	l := &loader{
		d:           &diags{file: name},
		upstream:    newCatalog(ctx, cfg.Upstream),
		backchannel: newCatalog(ctx, cfg.Backchannel),
		upTypes:     withGlobalTypes(cfg.Upstream.Types()),
		backTypes:   withGlobalTypes(cfg.Backchannel.Types()),
		relays:      cfg.Relay,
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		l.d.add(yamlErrorPos(name, err), "%s", yamlErrorText(err))
		return nil, l.d.err()
	}
	s := l.script(&doc, name)
	s.none = src == nil
	for _, c := range []*catalog{l.upstream, l.backchannel} {
		if c.err != nil {
			return nil, fmt.Errorf("script %s: schema: %w", name, c.err)
		}
	}
	if err := l.d.err(); err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`line (\d+):`)

func yamlErrorPos(name string, err error) calls.Pos {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return calls.Pos{File: name, Line: n}
	}
	return calls.Pos{File: name}
}

func yamlErrorText(err error) string {
	s := err.Error()
	s = yamlLine.ReplaceAllString(s, "")
	return "YAML: " + regexp.MustCompile(`^yaml: ?`).ReplaceAllString(regexp.MustCompile(`\s+`).ReplaceAllString(s, " "), "")
}

// loader holds what one Parse needs.
type loader struct {
	d           *diags
	upstream    *catalog
	backchannel *catalog
	upTypes     dynamic.TypeResolver
	backTypes   dynamic.TypeResolver
	vars        map[string]any
	relays      bool // Config.Relay
}

func (l *loader) values(env *tenv, types dynamic.TypeResolver) *valueCompiler {
	return &valueCompiler{d: l.d, env: env, types: types}
}

func (l *loader) script(doc *yaml.Node, name string) *Script {
	s := &Script{Name: name, upTypes: l.upTypes, backTypes: l.backTypes}
	root := deref(doc)
	if root == nil {
		return s // an empty file is an empty script
	}
	ps, ok := l.d.pairs(root, "a script")
	if !ok {
		return s
	}
	var checked []pair
	for _, p := range ps {
		if !strings.HasPrefix(p.key, "x-") { // x-* keys hold YAML anchors
			checked = append(checked, p)
		}
	}
	l.d.checkKeys(checked, "the script", topKeys...)
	s.sections = map[string]bool{}
	for _, p := range ps {
		s.sections[p.key] = true
	}
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	l.vars = map[string]any{}
	if vn := get("vars"); vn != nil {
		v, _ := l.d.varsJSON(vn)
		if m, ok := v.(map[string]any); ok {
			l.vars = m
		} else if v != nil {
			l.d.errorf(deref(vn), "vars must be a mapping, not %s", describeNode(vn))
		}
	}
	s.vars = l.vars
	names := map[string]calls.Pos{}
	s.Rules = l.rules(get("rules"), SectionRules, names)
	s.Backchannel = l.rules(get("backchannel"), SectionBackchannel, names)
	s.sidechannels = l.sidechannelAnswers(get("sidechannel"))
	if on := get("on_connect"); on != nil {
		s.onConnectPos = l.d.pos(deref(on))
		sc := &stepCtx{l: l, where: "on_connect", peers: l.backchannel, anyTo: true, types: l.upTypes,
			env: &tenv{peer: true, vars: l.vars}}
		s.onConnect = sc.steps(on)
	}
	s.Expectations = l.expectations(get("expect"), s)
	return s
}
