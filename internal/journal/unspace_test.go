package journal

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

// TestStripCommaSpaces checks the removal of the spaces protojson may put
// after commas: outside strings only, whatever the strings hold.
func TestStripCommaSpaces(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1, "b":[1, 2, {"c":"x"}]}`, `{"a":1,"b":[1,2,{"c":"x"}]}`},
		{`{"a":"1, 2", "b":"say \", \" twice", "c":"\\", "d":3}`, `{"a":"1, 2","b":"say \", \" twice","c":"\\","d":3}`},
		{`{"a":1,"b":2}`, `{"a":1,"b":2}`},
		{`{}`, `{}`},
	}
	for _, tt := range tests {
		if got := string(stripCommaSpaces([]byte(tt.in))); got != tt.want {
			t.Errorf("stripCommaSpaces(%s) = %s, want %s", tt.in, got, tt.want)
		}
		var v any
		if err := json.Unmarshal(stripCommaSpaces([]byte(tt.in)), &v); err != nil {
			t.Errorf("stripCommaSpaces(%s) is not JSON: %v", tt.in, err)
		}
	}
}

// TestMessageJSONIsCompact checks that a message renders without the
// spaces this build's protojson may add, whichever way it was built.
func TestMessageJSONIsCompact(t *testing.T) {
	src := corpusSchema(t)
	m := msg(t, src, "acme.User", `{"id": "1, 2", "name": "Ann"}`)
	got := string(MessageJSON(m, Rendering{Resolver: src.Types()}))
	if want := `{"id":"1, 2","name":"Ann"}`; got != want {
		t.Errorf("MessageJSON = %s, want %s (protojson alone: %s)", got, want, protojson.Format(m))
	}
}
