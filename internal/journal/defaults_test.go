package journal

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/calls"
)

// TestEntryDefaults: a vote answered COMMIT (the enum's zero) is {} in the
// journal; WithDefaults shows the state, and Defaulted names it.
func TestEntryDefaults(t *testing.T) {
	src := corpusSchema(t)
	ev := &calls.Event{
		Dir: calls.Reverse, Origin: calls.Answered, Method: "gitaly.RefTransaction/VoteTransaction",
		Requests:  []proto.Message{msg(t, src, "gitaly.VoteTransactionRequest", `{"transaction_id": "7"}`)},
		Responses: []proto.Message{msg(t, src, "gitaly.VoteTransactionResponse", `{"state": "COMMIT"}`)},
		Start:     t0,
	}
	var buf bytes.Buffer
	w := NewWriter(&buf, Options{Resolver: src.Types()})
	e, err := w.WriteEvent(ev, ByScript)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.Responses[0]); got != `{}` {
		t.Errorf("journal response = %s, want {} (defaults left out)", got)
	}
	if strings.Contains(buf.String(), "COMMIT") {
		t.Errorf("the journal line shows the default: %s", buf.String())
	}

	d := e.WithDefaults()
	if got := string(d.Responses[0]); got != `{"state":"COMMIT"}` {
		t.Errorf("WithDefaults response = %s, want {\"state\":\"COMMIT\"}", got)
	}
	var req map[string]any
	if err := json.Unmarshal(d.Requests[0], &req); err != nil || req["transaction_id"] != "7" || req["node"] != "" {
		t.Errorf("WithDefaults request = %s (%v), want every field", d.Requests[0], err)
	}
	if string(e.Responses[0]) != `{}` {
		t.Error("WithDefaults changed the entry it was called on")
	}

	reqs, resps := e.Defaulted()
	if !reflect.DeepEqual(resps, [][]string{{"state"}}) {
		t.Errorf("defaulted response fields = %q, want [[state]]", resps)
	}
	if len(reqs) != 1 || len(reqs[0]) == 0 || reqs[0][0] == "transaction_id" {
		t.Errorf("defaulted request fields = %q: want the unset ones, not transaction_id", reqs)
	}

	// An entry read back knows only its JSON.
	back, err := ReadAll(strings.NewReader(buf.String()), "journal")
	if err != nil || len(back) != 1 {
		t.Fatalf("ReadAll: %v, %d entries", err, len(back))
	}
	if got := string(back[0].WithDefaults().Responses[0]); got != `{}` {
		t.Errorf("read back, WithDefaults response = %s, want {} unchanged", got)
	}
	if reqs, resps := back[0].Defaulted(); reqs != nil || resps != nil {
		t.Errorf("read back, Defaulted = %q, %q; want nil", reqs, resps)
	}
}
