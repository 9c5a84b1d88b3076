package main

// A docSession runs the examples of one Markdown file for TestDocExamples
// (docs_test.go): the "console run" commands one after the other, and the
// command of each "console run background" block in the background, as in
// a terminal of its own, until the end of the file.
//
// A background command is started, and the file goes on once it is ready:
//
//   - bcctl serve and bcctl proxy are ready once they listen. The runner
//     gives each a free port on 127.0.0.1 for each TCP --listen address of
//     the example (the default 127.0.0.1:9000, or 9001 for a proxy, too),
//     a socket in a temporary directory for each unix: address and for
//     --admin, and --addr-file, which it waits for. From then on the
//     example's addresses stand for the real ones, in the arguments of the
//     commands that follow and in every output;
//   - any other command is ready once it has printed what its block shows
//     before "^C" (for `bcctl call --linger`, the response).
//
// Before each command, the runner waits until every running serve with an
// admin API has listed the services of its peers (by reflection over their
// backchannels), as it will have by the time a person types the next
// command. At the end of the file the background commands are stopped, the
// last started first: the runner waits until a command has printed what
// its block shows before "^C", interrupts it as SIGINT does (its context
// is cancelled with errInterrupted), waits for it to end and compares its
// exit code and everything it printed with the block. A block without
// "^C" is a command that ends by itself (serve --max-calls, say).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docWait bounds every wait of a session: for a serve to listen, for a
// command to print what its block shows, for a command to end.
const docWait = 20 * time.Second

// docSession runs the examples of one file, in order, in one directory.
type docSession struct {
	t    *testing.T
	file string
	// root is the repository's root directory.
	root string
	// sockDir holds the unix sockets and address files of background
	// commands: a short path, since a socket's path is at most 108 bytes.
	sockDir string
	nsock   int
	// addrs are the addresses the examples write and the real ones they
	// stand for.
	addrs []docAddr
	bg    []*docBackground
}

// docAddr is an address as the examples write it, and the real one.
type docAddr struct{ doc, real string }

// docBackground is a command running in the background.
type docBackground struct {
	c      docCommand
	out    *syncBuffer // stdout and stderr, as a terminal shows them
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the command has ended, with code
	code   int
	admin  string // the admin address of a serve started with --admin
}

func (b *docBackground) ended() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// shownBeforeInterrupt is what the block shows before "^C" (all of it
// when the command ends by itself).
func (b *docBackground) shownBeforeInterrupt() []string {
	if b.c.interrupt < 0 {
		return b.c.want
	}
	return b.c.want[:b.c.interrupt]
}

// newDocSession moves the test into a directory of its own that holds
// what the examples use of a checkout: the corpus at internal/corpus and
// the files of examples/. The examples start the servers they call (a
// "console run background" bcctl serve), as a reader does.
func newDocSession(t *testing.T, file string) *docSession {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := writeCorpus(filepath.Join("internal", "corpus")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS("examples", os.DirFS(filepath.Join(root, "examples"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir("certs", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeTestCerts("certs"); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "bcdoc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	s := &docSession{t: t, file: file, root: root, sockDir: sockDir}
	t.Cleanup(s.kill)
	return s
}

// writeFile writes the body of a block with file=NAME (writeDocFile).
func (s *docSession) writeFile(b docBlock, name string) {
	if err := writeDocFile(s.root, b, name); err != nil {
		s.t.Errorf("%s:%d: %v", s.file, b.line, err)
	}
}

// writeDocFile writes the body of a block with file=NAME to NAME. A NAME
// that is a file of the repository at root (examples/vote.yaml) is there
// already: the block must show it as it is.
func writeDocFile(root string, b docBlock, name string) error {
	if repo, err := os.ReadFile(filepath.Join(root, name)); err == nil {
		if string(repo) != b.body {
			return fmt.Errorf("the block of %s is not the repository's %s:\n%s", name, name, b.body)
		}
		return nil
	}
	return os.WriteFile(name, []byte(b.body), 0o644)
}

// checkStarted fails the test when args name a server that no example
// before them started (unstartedServer).
func (s *docSession) checkStarted(c docCommand, args []string) {
	if addr := unstartedServer(args); addr != "" {
		s.t.Fatalf("%s:%d: bcctl %s: no example before it started a server on %s (start one with a \"console run background\" bcctl serve)",
			s.file, c.line, strings.Join(c.args, " "), addr)
	}
}

// unstartedServer is the address the examples give their servers when
// args (with the started servers' addresses put in) still name it: the
// example calls a server that no example before it started, and would
// reach whatever listens there on this machine.
func unstartedServer(args []string) string {
	for _, a := range args {
		for _, addr := range []string{"127.0.0.1:9000", "localhost:9000"} {
			if strings.Contains(a, addr) {
				return addr
			}
		}
	}
	return ""
}

// run runs a command and compares its exit code and output (stdout, then
// stderr) with the example.
func (s *docSession) run(c docCommand) {
	s.settle(c)
	streams, _, out, errOut := TestIO()
	streams.SetStdoutTTY(true)
	args := s.realArgs(c.args)
	s.checkStarted(c, args)
	code := Run(testCtx(s.t), args, TestFactory(streams))
	got := s.docLines(out.String() + errOut.String())
	if code != c.wantCode || !matchDoc(c.want, got) {
		s.t.Errorf("%s:%d: bcctl %s\nexit %d (want %d)\ngot:\n%s\nwant:\n%s", s.file, c.line,
			strings.Join(c.args, " "), code, c.wantCode, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
	}
}

// start starts a background command and waits until it is ready.
func (s *docSession) start(c docCommand) {
	s.settle(c)
	args := c.args
	var plan *docServePlan
	if len(args) > 0 && (args[0] == "serve" || args[0] == "proxy") {
		args, plan = s.serveArgs(args)
	}
	args = s.realArgs(args)
	s.checkStarted(c, args)
	ctx, cancel := context.WithCancelCause(context.Background())
	b := &docBackground{c: c, out: newSyncBuffer(), cancel: cancel, done: make(chan struct{})}
	streams := &IOStreams{In: strings.NewReader(""), Out: b.out, ErrOut: b.out}
	streams.SetStdoutTTY(true)
	go func() {
		defer close(b.done)
		b.code = Run(ctx, args, TestFactory(streams))
	}()
	s.bg = append(s.bg, b)
	if plan != nil {
		s.waitListening(b, plan)
		return
	}
	if err := s.waitOutput(b, b.shownBeforeInterrupt()); err != nil {
		s.t.Fatalf("%s:%d: bcctl %s (in the background) did not print what the example shows before ^C: %v\ngot:\n%s\nwant:\n%s",
			s.file, c.line, strings.Join(c.args, " "), err, strings.Join(s.outputOf(b), "\n"), strings.Join(b.shownBeforeInterrupt(), "\n"))
	}
}

// stopAll stops the background commands, the last started first, and
// compares what each printed with its block.
func (s *docSession) stopAll() {
	for i := len(s.bg) - 1; i >= 0; i-- {
		s.stop(s.bg[i])
	}
}

func (s *docSession) stop(b *docBackground) {
	c := b.c
	where := fmt.Sprintf("%s:%d: bcctl %s (in the background)", s.file, c.line, strings.Join(c.args, " "))
	if err := s.waitOutput(b, b.shownBeforeInterrupt()); err != nil {
		s.t.Errorf("%s did not print what the example shows before ^C: %v\ngot:\n%s\nwant:\n%s",
			where, err, strings.Join(s.outputOf(b), "\n"), strings.Join(b.shownBeforeInterrupt(), "\n"))
		s.end(b, errors.New("the example failed"))
		return
	}
	atInterrupt := -1
	if c.interrupt >= 0 {
		// Every command that used it has ended by now (the background ones
		// were stopped first): a person typing ^C would have seen each of
		// its peers leave.
		if err := waitPeersLeft(b); err != nil {
			s.t.Errorf("%s: %v\ngot:\n%s", where, err, strings.Join(s.outputOf(b), "\n"))
		}
		if b.ended() {
			s.t.Errorf("%s ended (exit %d) before the ^C the example shows\ngot:\n%s", where, b.code, strings.Join(s.outputOf(b), "\n"))
			return
		}
		atInterrupt = len(s.outputOf(b))
		b.cancel(errInterrupted)
	}
	if !s.end(b, nil) {
		s.t.Errorf("%s did not end within %s\ngot:\n%s", where, docWait, strings.Join(s.outputOf(b), "\n"))
		return
	}
	got := s.outputOf(b)
	var ok bool
	if atInterrupt >= 0 {
		ok = matchDoc(c.want[:c.interrupt], got[:atInterrupt]) && matchDoc(c.want[c.interrupt:], got[atInterrupt:])
		got = slices.Insert(got, atInterrupt, "^C")
	} else {
		ok = matchDoc(c.want, got)
	}
	want := c.want
	if c.interrupt >= 0 {
		want = slices.Insert(slices.Clone(want), c.interrupt, "^C")
	}
	if !ok || b.code != c.wantCode {
		s.t.Errorf("%s\nexit %d (want %d)\ngot:\n%s\nwant:\n%s", where, b.code, c.wantCode, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// end waits for b to end, after cancelling it with cause unless cause is
// nil, and reports whether it ended within docWait (when it did not, it
// is cancelled and waited for once more).
func (s *docSession) end(b *docBackground, cause error) bool {
	if cause != nil {
		b.cancel(cause)
	}
	t := time.NewTimer(docWait)
	defer t.Stop()
	select {
	case <-b.done:
		return true
	case <-t.C:
		b.cancel(errors.New("it did not end in time"))
		<-b.done
		return false
	}
}

// kill ends the background commands still running when the test ends
// early (a t.Fatal), before their directory is removed.
func (s *docSession) kill() {
	for _, b := range s.bg {
		if !b.ended() {
			s.end(b, errors.New("the test ended"))
		}
	}
}

// waitOutput waits until what b has printed (its whole lines) matches
// want. It fails when b prints a line that want does not allow for, ends
// without having printed want, or has not printed it within docWait.
func (s *docSession) waitOutput(b *docBackground, want []string) error {
	t := time.NewTimer(docWait)
	defer t.Stop()
	for {
		text, changed := b.out.snapshot()
		got := s.docLines(wholeLines(text))
		switch {
		case matchDoc(want, got):
			return nil
		case !matchDocPrefix(want, got):
			return errors.New("it printed what the example does not show")
		}
		select {
		case <-changed:
		case <-b.done:
			if matchDoc(want, s.outputOf(b)) {
				return nil
			}
			return fmt.Errorf("it ended (exit %d) first", b.code)
		case <-t.C:
			return fmt.Errorf("not within %s", docWait)
		}
	}
}

// peerLine is how serve says that a peer joined or left.
var peerLine = regexp.MustCompile(`\bpeer (\d+) (joined|left)\b`)

// waitPeersLeft waits (up to docWait) until b has said, of each peer it
// said joined, that it left. serve notices a peer leave when its
// connection closes, after the command that made it has ended.
func waitPeersLeft(b *docBackground) error {
	t := time.NewTimer(docWait)
	defer t.Stop()
	for {
		text, changed := b.out.snapshot()
		present := map[string]bool{}
		for _, m := range peerLine.FindAllStringSubmatch(text, -1) {
			present[m[1]] = m[2] == "joined"
		}
		var staying []string
		for id, here := range present {
			if here {
				staying = append(staying, id)
			}
		}
		if len(staying) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-b.done:
			return nil
		case <-t.C:
			slices.Sort(staying)
			return fmt.Errorf("peers %s did not leave within %s of their commands' end", strings.Join(staying, ", "), docWait)
		}
	}
}

// outputOf is what b has printed so far, in the examples' addresses.
func (s *docSession) outputOf(b *docBackground) []string {
	text, _ := b.out.snapshot()
	if !b.ended() {
		text = wholeLines(text)
	}
	return s.docLines(text)
}

// wholeLines cuts text after its last newline.
func wholeLines(text string) string {
	return text[:strings.LastIndexByte(text, '\n')+1]
}

// docLines splits output into lines, with the real addresses written as
// the examples write them.
func (s *docSession) docLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i := range lines {
		for _, a := range s.addrs {
			lines[i] = replaceAddr(lines[i], a.real, a.doc)
		}
	}
	return lines
}

// realArgs are args with the examples' addresses replaced by the real ones.
func (s *docSession) realArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, addr := range s.addrs {
			a = replaceAddr(a, addr.doc, addr.real)
		}
		out[i] = a
	}
	return out
}

// replaceAddr replaces the address old with new in s, except where old is
// followed by a digit (127.0.0.1:9000 is not in 127.0.0.1:90001).
func replaceAddr(s, old, new string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len(old)
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			b.WriteString(s[:j])
		} else {
			b.WriteString(s[:i])
			b.WriteString(new)
		}
		s = s[j:]
	}
}

// docServePlan is where an example's bcctl serve listens, as the example
// says, and the --addr-file where the real addresses will be.
type docServePlan struct {
	listen   []string
	unix     bool // --unix: --listen values are socket paths
	admin    string
	addrFile string
}

// serveArgs rewrites the arguments of bcctl serve to listen on a free port
// of 127.0.0.1 for each TCP address and on a socket in sockDir for each
// unix one, and to write --addr-file.
func (s *docSession) serveArgs(args []string) ([]string, *docServePlan) {
	plan := &docServePlan{unix: slices.Contains(args, "--unix")}
	out := []string{}
	for i := 0; i < len(args); i++ {
		name, val, inline := strings.Cut(args[i], "=")
		isListen := name == "--listen" || name == "-l"
		if (!isListen && name != "--admin") || (!inline && i+1 == len(args)) {
			out = append(out, args[i])
			continue
		}
		if !inline {
			i++
			val = args[i]
		}
		if isListen {
			plan.listen = append(plan.listen, val)
		} else {
			plan.admin = val
		}
		out = append(out, name, s.freeAddr(val, isListen && plan.unix))
	}
	if len(plan.listen) == 0 {
		def := serveDefaultListen
		if args[0] == "proxy" {
			def = proxyDefaultListen
		}
		plan.listen = []string{def}
		out = append(out, "--listen", s.freeAddr(def, false))
	}
	plan.addrFile = filepath.Join(s.sockDir, fmt.Sprintf("serve%d.addr", len(s.bg)))
	return append(out, "--addr-file", plan.addrFile), plan
}

// freeAddr is where to listen for an example's address: port 0 of its
// host, or a socket in sockDir named after its own.
func (s *docSession) freeAddr(addr string, unixPath bool) string {
	path, isUnix := strings.CutPrefix(addr, "unix:")
	if isUnix || unixPath {
		s.nsock++
		real := filepath.Join(s.sockDir, fmt.Sprintf("%d-%s", s.nsock, filepath.Base(path)))
		if isUnix {
			return "unix:" + real
		}
		return real
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // serve says what is wrong with it
	}
	return net.JoinHostPort(host, "0")
}

// waitListening waits for serve's --addr-file, and from then on maps the
// example's addresses to the ones serve listens on.
func (s *docSession) waitListening(b *docBackground, plan *docServePlan) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(docWait)
	defer deadline.Stop()
	where := fmt.Sprintf("%s:%d: bcctl %s", s.file, b.c.line, strings.Join(b.c.args, " "))
	var data []byte
	for {
		var err error
		if data, err = os.ReadFile(plan.addrFile); err == nil {
			break
		}
		select {
		case <-b.done:
			s.t.Fatalf("%s ended (exit %d) before it listened:\n%s", where, b.code, strings.Join(s.outputOf(b), "\n"))
		case <-deadline.C:
			s.t.Fatalf("%s did not listen within %s:\n%s", where, docWait, strings.Join(s.outputOf(b), "\n"))
		case <-tick.C:
		}
	}
	var listen []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		switch kind, addr, _ := strings.Cut(line, " "); kind {
		case "listen":
			listen = append(listen, addr)
		case "admin":
			b.admin = addr
			s.mapAddr(plan.admin, addr)
		}
	}
	if len(listen) != len(plan.listen) {
		s.t.Fatalf("%s listens on %q, want %d addresses like %q", where, listen, len(plan.listen), plan.listen)
	}
	for i, doc := range plan.listen {
		if plan.unix && !strings.HasPrefix(doc, "unix:") {
			doc = "unix:" + doc
		}
		s.mapAddr(doc, listen[i])
	}
}

// mapAddr makes the example's address doc stand for real: a socket's
// path stands for the real path, with or without "unix:".
func (s *docSession) mapAddr(doc, real string) {
	docPath, docUnix := strings.CutPrefix(doc, "unix:")
	realPath, realUnix := strings.CutPrefix(real, "unix:")
	if docUnix && realUnix {
		doc, real = docPath, realPath
	}
	s.addrs = append(s.addrs, docAddr{doc: doc, real: real})
}

// settle waits until every running serve with an admin API has listed the
// services of each peer connected to it.
func (s *docSession) settle(next docCommand) {
	for _, b := range s.bg {
		if b.admin == "" || b.ended() {
			continue
		}
		if err := waitDiscovered(b.admin); err != nil {
			s.t.Fatalf("%s:%d: before bcctl %s: serve %s: %v", s.file, next.line, strings.Join(next.args, " "), b.admin, err)
		}
	}
}

// waitDiscovered waits (up to docWait) until no peer of the serve with the
// admin API at addr has its services pending.
func waitDiscovered(addr string) error {
	if err := waitAdminPeers(addr, docWait, noneDiscovering); err != nil {
		return fmt.Errorf("the services of its peers are still being listed: %v", err)
	}
	return nil
}

func TestReplaceAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"--listen 127.0.0.1:9000", "--listen 127.0.0.1:41234"},
		{"127.0.0.1:9000, 127.0.0.1:9000", "127.0.0.1:41234, 127.0.0.1:41234"},
		{"127.0.0.1:90001 127.0.0.1:9000", "127.0.0.1:90001 127.0.0.1:41234"},
		{"127.0.0.1:9001", "127.0.0.1:9001"},
	} {
		if got := replaceAddr(tc.in, "127.0.0.1:9000", "127.0.0.1:41234"); got != tc.want {
			t.Errorf("replaceAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDocServeArgs(t *testing.T) {
	s := &docSession{t: t, sockDir: "/s"}
	for _, tc := range []struct {
		args, want []string
		listen     []string
		admin      string
	}{
		{
			args:   []string{"serve", "--listen", "127.0.0.1:9000", "--admin=unix:/tmp/a.sock", "--script", "x.yaml"},
			want:   []string{"serve", "--listen", "127.0.0.1:0", "--admin", "unix:/s/1-a.sock", "--script", "x.yaml", "--addr-file", "/s/serve0.addr"},
			listen: []string{"127.0.0.1:9000"}, admin: "unix:/tmp/a.sock",
		},
		{
			args:   []string{"serve", "--protoset", "p", "--admin", "[::1]:9001"},
			want:   []string{"serve", "--protoset", "p", "--admin", "[::1]:0", "--listen", "127.0.0.1:0", "--addr-file", "/s/serve0.addr"},
			listen: []string{serveDefaultListen}, admin: "[::1]:9001",
		},
		{
			args:   []string{"serve", "--unix", "-l", "/tmp/serve.sock", "-l=unix:/tmp/b.sock"},
			want:   []string{"serve", "--unix", "-l", "/s/2-serve.sock", "-l", "unix:/s/3-b.sock", "--addr-file", "/s/serve0.addr"},
			listen: []string{"/tmp/serve.sock", "unix:/tmp/b.sock"},
		},
	} {
		got, plan := s.serveArgs(tc.args)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") || strings.Join(plan.listen, " ") != strings.Join(tc.listen, " ") || plan.admin != tc.admin {
			t.Errorf("serveArgs(%q) = %q, listen %q, admin %q\nwant %q, listen %q, admin %q", tc.args, got, plan.listen, plan.admin, tc.want, tc.listen, tc.admin)
		}
	}
}

func TestUnstartedServer(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "--plaintext", "127.0.0.1:41234", "acme.Users/Get"}, ""},
		{[]string{"call", "--plaintext", "127.0.0.1:9000", "acme.Users/Get"}, "127.0.0.1:9000"},
		{[]string{"list", "localhost:9000"}, "localhost:9000"},
		{[]string{"call", "--plaintext", "127.0.0.1:1", "acme.Users/Get"}, ""},
	} {
		if got := unstartedServer(tc.args); got != tc.want {
			t.Errorf("unstartedServer(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestDocWriteFile(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "examples", "vote.yaml"), []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		name, body string
		differs    bool
	}{
		{"examples/vote.yaml", "a: 1\n", false},
		{"examples/vote.yaml", "a: 2\n", true},
		{"mine.yaml", "b: 1\n", false},
	} {
		err := writeDocFile(root, docBlock{line: 3, body: tc.body}, tc.name)
		if (err != nil) != tc.differs {
			t.Errorf("block of %s %q: error %v, want one: %v", tc.name, tc.body, err, tc.differs)
		}
	}
	if data, err := os.ReadFile("mine.yaml"); err != nil || string(data) != "b: 1\n" {
		t.Errorf("mine.yaml: %q, %v; want the block written", data, err)
	}
}
