package dynamic

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestDescribe(t *testing.T) {
	symbols := []string{
		"acme.Users", "acme.Users/Chat", "acme.User", "acme.Role",
		"gitaly.RefTransaction", "gitaly.VoteTransactionResponse", "gitaly.VoteTransactionResponse.TransactionState",
	}
	eachSource(t, func(t *testing.T, src Source) {
		for _, sym := range symbols {
			d, err := src.FindSymbol(testContext(t), sym)
			if err != nil {
				t.Fatal(err)
			}
			text, err := Describe(d)
			if err != nil {
				t.Fatal(err)
			}
			// Every source gives the same text: comments included.
			golden(t, "describe_"+strings.NewReplacer("/", "_", ".", "_").Replace(sym)+".proto", text)
		}
	})
}

func TestTemplateJSON(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		for _, name := range []string{"acme.User", "acme.UpdateUserRequest", "gitaly.VoteTransactionRequest"} {
			d, err := src.FindSymbol(testContext(t), name)
			if err != nil {
				t.Fatal(err)
			}
			md := d.(protoreflect.MessageDescriptor)
			text, err := TemplateJSON(md, false)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "template_"+strings.ReplaceAll(name, ".", "_")+".json", text+"\n")
		}
	})
}

// Every template, with JSON or proto names, parses back into its message.
func TestTemplatesParseBack(t *testing.T) {
	src := filesSource(t)
	var messages []protoreflect.MessageDescriptor
	for _, fd := range src.(*FileSource).Files() {
		var walk func(protoreflect.MessageDescriptors)
		walk = func(mds protoreflect.MessageDescriptors) {
			for i := range mds.Len() {
				if !mds.Get(i).IsMapEntry() {
					messages = append(messages, mds.Get(i))
				}
				walk(mds.Get(i).Messages())
			}
		}
		walk(fd.Messages())
	}
	if len(messages) < 40 {
		t.Fatalf("found only %d messages", len(messages))
	}
	for _, md := range messages {
		for _, protoNames := range []bool{false, true} {
			text, err := TemplateJSON(md, protoNames)
			if err != nil {
				t.Errorf("TemplateJSON(%s): %v", md.FullName(), err)
				continue
			}
			if err := ParseJSON([]byte(text), MessageTemplate(md), src.Types()); err != nil {
				t.Errorf("template of %s does not parse back: %v\n%s", md.FullName(), err, text)
			}
		}
	}
}

func ExampleTemplateJSON() {
	src, err := NewSourceFromProtosets("../corpus/corpus.protoset")
	if err != nil {
		panic(err)
	}
	d, _ := src.FindSymbol(context.Background(), "gitaly.VoteTransactionRequest")
	text, _ := TemplateJSON(d.(protoreflect.MessageDescriptor), true)
	fmt.Println(text)
	// Output:
	// {
	//   "repository": {
	//     "storage_name": "",
	//     "relative_path": "",
	//     "git_object_directory": "",
	//     "git_alternate_object_directories": [
	//       ""
	//     ],
	//     "gl_repository": "",
	//     "gl_project_path": ""
	//   },
	//   "transaction_id": "0",
	//   "node": "",
	//   "reference_updates_hash": "",
	//   "phase": "UNKNOWN_PHASE"
	// }
}

func ExampleFindMethod() {
	src, err := NewSourceFromProtosets("../corpus/corpus.protoset")
	if err != nil {
		panic(err)
	}
	_, err = FindMethod(context.Background(), src, "gitaly.RefTransaction/VoteTransactoin")
	fmt.Println(err)
	md, _ := FindMethod(context.Background(), src, "/gitaly.RefTransaction/VoteTransaction")
	fmt.Println(MethodName(md), "takes", md.Input().FullName())
	// Output:
	// dynamic: service gitaly.RefTransaction has no method "VoteTransactoin"; did you mean "gitaly.RefTransaction/VoteTransaction"?
	// gitaly.RefTransaction/VoteTransaction takes gitaly.VoteTransactionRequest
}
