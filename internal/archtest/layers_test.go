package archtest

// The layer table: where each package of the module sits. Keep it in step
// with docs/architecture.md. A package may import a package of a lower
// layer, or one of its own layer and room; nothing else.
//
// A new package must be added here: the test fails for a package it does
// not find. Patterns are import paths relative to the module; a trailing
// "/..." matches the path and everything below it. The first match wins.
var layers = []placement{
	// Leaves: no bcctl imports, or only other leaves.
	{"internal/words", 0, "leaf"},
	{"internal/fanout", 0, "leaf"},
	{"internal/corpus", 0, "leaf"},
	{"internal/testcert", 0, "leaf"},
	{"internal/testnet", 0, "leaf"},
	{"internal/admin/adminpb", 0, "leaf"}, // generated from admin.proto
	{"internal/archtest", 0, "leaf"},      // this test

	// The public libraries: the wire protocol. They import each other
	// and nothing of internal/ (checked on every dependency below).
	{"listenmux", 1, "public"},
	{"backchannel", 1, "public"},
	{"sidechannel", 1, "public"},

	// The call vocabulary: what happened on a call.
	{"internal/calls", 2, "calls"},

	// Schemas, dynamic messages, invocation, the dynamic server.
	{"internal/dynamic/...", 3, "dynamic"},

	// What is built on schemas, each in its own room: the rule language,
	// the journal, the hosted backchannel, recordings, code generation.
	{"internal/script", 4, "script"},
	{"internal/journal", 4, "journal"},
	{"internal/host", 4, "host"},
	{"internal/recording", 4, "recording"},
	{"internal/protogen", 4, "protogen"},

	// Sessions: a client's session; the mock upstream.
	{"internal/client", 5, "client"},
	{"internal/serve", 5, "serve"},

	// Front ends over sessions.
	{"internal/admin", 6, "admin"},
	{"internal/demo", 6, "demo"},
	{"internal/proxy", 6, "proxy"},
	{"internal/tui/...", 6, "tui"},

	// Commands.
	{"cmd/...", 7, "cmd"},
	{"internal/cmd/...", 7, "cmd"},
}

// thirdParty says which rooms may import a library directly (by import
// path prefix). Libraries not listed may be imported anywhere.
var thirdParty = map[string][]string{
	"github.com/spf13/cobra":           {"cmd"},
	"github.com/charmbracelet/":        {"tui"},
	"github.com/bufbuild/protocompile": {"dynamic"},
	"github.com/jhump/protoreflect":    {"dynamic"},
}

// publicForbidden are what no public package may depend on, even
// indirectly (module-relative paths for the module's own).
var publicForbidden = []string{
	"github.com/bcctl/bcctl/internal/",
	"github.com/bcctl/bcctl/cmd/",
	"github.com/spf13/cobra",
	"github.com/charmbracelet/",
}
