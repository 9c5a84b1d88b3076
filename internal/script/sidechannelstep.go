package script

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/words"
	"github.com/bcctl/bcctl/sidechannel"
)

// stepSidechannel opens the caller's sidechannel (bcctl serve's rules).
const stepSidechannel stepKind = "sidechannel"

// Faults a serve sidechannel step can inject.
const (
	// faultCloseEarly opens the sidechannel and closes it at once, without
	// reading the body or answering.
	faultCloseEarly = "close-early"
	// faultWrongID opens a sidechannel under an ID the client did not
	// register: the client refuses it, and the step fails.
	faultWrongID = "wrong-id"
)

var serveFaults = []string{faultCloseEarly, faultWrongID}

// Keys of a sidechannel step.
var sidechannelKeys = []string{"expect", "as", "else", "reply", "reply_file", "reply_size", "fault"}

// MaxSidechannelReplySize bounds reply_size (and send_size).
const MaxSidechannelReplySize = 1 << 30

// sidechannelSpec is a compiled `sidechannel` step: open the caller's
// sidechannel, read the body to its end, check it, answer, close.
type sidechannelSpec struct {
	pos    calls.Pos
	expect matcher // on the body; nil: any
	as     string
	orElse *failSpec // nil: ABORTED with an explanation
	reply  *sidechannelPayload
	fault  string
}

// sidechannelPayload is what one side sends through a sidechannel: text
// (a template), raw bytes, a file's content, or a number of generated
// bytes; nil sends nothing.
type sidechannelPayload struct {
	text *template
	raw  []byte
	file string
	size int64
}

func (c *stepCtx) sidechannelStep(n *yaml.Node, at string) *sidechannelSpec {
	d := c.l.d
	if !c.sidechannels {
		d.errorf(orNode(deref(n)), "%s: a sidechannel is opened by the server of a call: sidechannel steps belong in the do, each or end of rules (bcctl serve)", at)
		return nil
	}
	if nn := deref(n); nn == nil || isNull(nn) {
		// Open, read the body, answer nothing.
		return &sidechannelSpec{pos: d.pos(orNode(nn))}
	}
	ps, ok := d.pairs(n, at)
	if !ok {
		return nil
	}
	d.checkKeys(ps, at, sidechannelKeys...)
	get := func(k string) *yaml.Node {
		for _, p := range ps {
			if p.key == k {
				return p.val
			}
		}
		return nil
	}
	ss := &sidechannelSpec{pos: d.pos(deref(n))}
	if fn := get("fault"); fn != nil {
		ss.fault = c.l.fault(fn, at+".fault", serveFaults)
	}
	if en := get("expect"); en != nil {
		ss.expect = c.l.sidechannelExpect(en, at+".expect", "body")
	}
	env := c.env
	if an := get("as"); an != nil {
		ss.as = c.l.captureAs(an, at+".as")
		if ss.as != "" {
			env = env.withData(ss.as, sidechannelData)
		}
	}
	if en := get("else"); en != nil {
		if ss.expect == nil {
			d.errorf(deref(en), "%s.else needs an expect to act on", at)
		}
		ss.orElse = c.l.fail(en, env, at+".else", c.types)
	}
	ss.reply = c.l.sidechannelPayload(get, "reply", env, at)
	if ss.fault != "" && (ss.expect != nil || ss.reply != nil) {
		d.errorf(orNode(deref(n)), "%s: fault %s never reads the body or answers: leave out expect and reply", at, ss.fault)
	}
	c.env = env
	return ss
}

// fault reads a fault name.
func (l *loader) fault(n *yaml.Node, at string, allowed []string) string {
	f, ok := l.d.scalarString(n, at)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if f == a {
			return f
		}
	}
	l.d.errorf(deref(n), "%s: unknown fault %q%s", at, f, words.DidYouMean(f, allowed))
	return ""
}

// captureAs reads the name of an `as`.
func (l *loader) captureAs(n *yaml.Node, at string) string {
	as, ok := l.d.scalarString(n, at)
	switch {
	case !ok:
		return ""
	case !captureName.MatchString(as):
		l.d.errorf(deref(n), "%s: %q is not a name (letters, digits, _)", at, as)
	case isBuiltinRoot(as):
		l.d.errorf(deref(n), "%s: %q is a built-in name; choose another", at, as)
	default:
		return as
	}
	return ""
}

// sidechannelExpect compiles matchers over a body or response.
func (l *loader) sidechannelExpect(n *yaml.Node, at, path string) matcher {
	if nn := deref(n); nn == nil || nn.Kind != yaml.MappingNode {
		l.d.errorf(orNode(nn), "%s must be a mapping of %s, not %s", at, strings.Join(sidechannelFields, ", "), describeNode(nn))
		return nil
	}
	mc := &matchCompiler{d: l.d, prefix: at + ": "}
	return mc.compile(n, mtarget{md: sidechannelData}, path, false)
}

// sidechannelPayload reads the one of KEY, KEY_file and KEY_size that is
// given; nil when none is.
func (l *loader) sidechannelPayload(get func(string) *yaml.Node, key string, env *tenv, at string) *sidechannelPayload {
	d := l.d
	var given []string
	for _, k := range []string{key, key + "_file", key + "_size"} {
		if get(k) != nil {
			given = append(given, k)
		}
	}
	switch len(given) {
	case 0:
		return nil
	case 1:
	default:
		d.errorf(deref(get(given[1])), "%s: give one of %s, %s_file and %s_size, not %s", at, key, key, key, strings.Join(given, " and "))
		return nil
	}
	n := get(given[0])
	p := &sidechannelPayload{}
	switch given[0] {
	case key:
		if isBytesForm(n) {
			b, err := rawBytes(n)
			if err != nil {
				d.errorf(deref(n), "%s.%s: %v", at, key, err)
			}
			p.raw = b
			return p
		}
		p.text = l.text(n, env, at+"."+key)
	case key + "_file":
		name, ok := d.scalarString(n, at+"."+given[0])
		if !ok {
			return nil
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(d.file), name)
		}
		if _, err := os.Stat(name); err != nil {
			d.errorf(deref(n), "%s.%s: %v", at, given[0], err)
		}
		p.file = name
	default:
		size, ok := d.size(n, at+"."+given[0])
		if !ok {
			return nil
		}
		p.size = size
	}
	return p
}

// size reads a byte count: a whole number, or one with a unit (KiB, MiB,
// GiB), at most MaxSidechannelReplySize.
func (d *diags) size(n *yaml.Node, what string) (int64, bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		d.errorf(orNode(n), "%s must be a size such as 4096 or 8MiB, not %s", what, describeNode(n))
		return 0, false
	}
	v, err := parseSize(n.Value)
	if err != nil {
		d.errorf(n, "%s: %v", what, err)
		return 0, false
	}
	return v, true
}

// parseSize parses a size (words.ParseBytes) of at most
// MaxSidechannelReplySize.
func parseSize(s string) (int64, error) {
	v, err := words.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if v > MaxSidechannelReplySize {
		return 0, fmt.Errorf("%s is more than the largest size, 1GiB", s)
	}
	return v, nil
}

// writeTo sends the payload to w.
func (p *sidechannelPayload) writeTo(w io.Writer, sc *scope) error {
	switch {
	case p == nil:
		return nil
	case p.raw != nil:
		_, err := w.Write(p.raw)
		return err
	case p.text != nil:
		v, err := sc.render(p.text)
		if err != nil {
			return err
		}
		if b, ok := v.(bytesVal); ok {
			_, err = w.Write(b)
			return err
		}
		_, err = io.WriteString(w, stringify(v))
		return err
	case p.file != "":
		f, err := os.Open(p.file)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	}
	_, err := io.CopyN(w, patternReader{}, p.size)
	return err
}

// patternReader yields the bytes 00 01 02 … ff, over and over: generated
// payloads (reply_size, send_size) are the same every time.
type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// sidechannel runs a sidechannel step. A sidechannel that cannot be opened
// or read fails the call with INTERNAL, as Gitaly's smart HTTP service
// fails it; an expect that does not hold fails it with the step's else.
func (r *run) sidechannel(ss *sidechannelSpec) error {
	start := time.Now()
	rec := &calls.Sidechannel{Fault: ss.fault}
	r.call.sidechannel = rec
	defer func() { rec.Duration = time.Since(start) }()
	fail := func(what string, err error) error {
		rec.Err = err.Error()
		return status.Errorf(codes.Internal, "sidechannel (%s): %s: %v", ss.pos, what, err)
	}

	ctx := r.ctx
	if ss.fault == faultWrongID {
		ctx = withWrongSidechannelID(ctx)
	}
	sc, err := sidechannel.OpenSidechannel(ctx)
	if err != nil {
		return fail("open", err)
	}
	defer sc.Close()
	rec.ID = sc.ID()
	if ss.fault == faultCloseEarly {
		return sc.Close()
	}

	body := NewStreamData(sc.ID())
	_, err = io.Copy(body, sc)
	rec.BodyBytes, rec.BodySHA256 = body.Size(), body.SHA256()
	if err != nil {
		return fail("read the body", err)
	}
	data := body.json()
	if ss.as != "" {
		r.sc.caps[ss.as] = data
	}
	if ss.expect != nil {
		if ok, why := ss.expect.match(data, true); !ok {
			rec.Err = why
			sc.Close()
			r.done = true
			if ss.orElse != nil {
				return r.fail(ss.orElse)
			}
			return status.Errorf(codes.Aborted, "sidechannel (%s): %s", ss.pos, why)
		}
	}

	response := NewStreamData(sc.ID())
	err = ss.reply.writeTo(io.MultiWriter(sc, response), r.sc)
	rec.ResponseBytes, rec.ResponseSHA256 = response.Size(), response.SHA256()
	if err != nil {
		return fail("write the response", err)
	}
	if err := sc.Close(); err != nil {
		return fail("close", err)
	}
	return nil
}

// withWrongSidechannelID returns ctx whose incoming sidechannel ID is one
// the client did not register.
func withWrongSidechannelID(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	vals := md.Get(sidechannel.MetadataKey)
	if len(vals) == 0 {
		return ctx
	}
	id, _ := strconv.ParseInt(vals[len(vals)-1], 10, 64)
	md.Set(sidechannel.MetadataKey, strconv.FormatInt(id+1<<32, 10))
	return metadata.NewIncomingContext(ctx, md)
}

// withData returns a copy of e where name refers to a value of type md
// (the capture of a sidechannel step).
func (e *tenv) withData(name string, md protoreflect.MessageDescriptor) *tenv {
	c := *e
	c.data = make(map[string]protoreflect.MessageDescriptor, len(e.data)+1)
	for k, v := range e.data {
		c.data[k] = v
	}
	c.data[name] = md
	return &c
}
