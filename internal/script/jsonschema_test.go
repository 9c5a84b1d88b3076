package script

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
)

// TestJSONSchemaMatchesLoader fails when docs/script.schema.json and the
// loader disagree on the keys, step kinds, matchers or codes they accept.
func TestJSONSchemaMatchesLoader(t *testing.T) {
	b, err := os.ReadFile("../../docs/script.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("docs/script.schema.json is not JSON: %v", err)
	}
	if got := schema["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema: got %v, want draft 2020-12", got)
	}
	defs, _ := schema["$defs"].(map[string]any)
	def := func(name string) map[string]any {
		d, ok := defs[name].(map[string]any)
		if !ok {
			t.Fatalf("$defs.%s is missing", name)
		}
		return d
	}
	props := func(obj map[string]any) []string {
		p, _ := obj["properties"].(map[string]any)
		var out []string
		for k := range p {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	same := func(what string, got []string, want []string) {
		t.Helper()
		w := append([]string(nil), want...)
		sort.Strings(w)
		if strings.Join(got, ",") != strings.Join(w, ",") {
			t.Errorf("%s: the JSON Schema has %v, the loader accepts %v", what, got, w)
		}
	}
	same("top-level keys", props(schema), topKeys)
	same("rule keys", props(def("rule")), ruleKeys)
	same("match keys", props(def("match")), matchKeys)
	same("matchers", props(def("matcherOps")), matchOps)
	same("call keys", props(def("call")), callKeys)
	same("call expect keys", props(def("callExpect")), expectCallKeys)
	same("fail keys", props(def("fail")), failKeys)
	same("expect keys", props(def("expectation")), expectKeys)
	same("raw-bytes forms", props(def("bytes")), bytesFormKeys)
	same("sidechannel step keys", props(def("sidechannel")), sidechannelKeys)
	same("sidechannel data fields", props(def("sidechannelExpect")), sidechannelFields)
	same("sidechannel answer keys", props(def("sidechannelAnswer")), sidechannelAnswerKeys)

	var steps []string
	for _, alt := range def("step")["oneOf"].([]any) {
		req := alt.(map[string]any)["required"].([]any)
		steps = append(steps, req[0].(string))
	}
	sort.Strings(steps)
	same("step kinds", steps, stepKinds)

	inSchema := map[string]bool{}
	for _, alt := range def("code")["anyOf"].([]any) {
		enum, _ := alt.(map[string]any)["enum"].([]any)
		for _, c := range enum {
			inSchema[c.(string)] = true
		}
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if name := calls.CodeName(c); !inSchema[name] {
			t.Errorf("the JSON Schema's code enum lacks %s", name)
		}
	}
}
