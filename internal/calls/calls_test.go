package calls_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/internal/calls"
)

func TestCodeNameRoundTrip(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		name := calls.CodeName(c)
		if name != strings.ToUpper(name) || strings.ContainsAny(name, " ") {
			t.Errorf("CodeName(%d) = %q, want an upper-case name", c, name)
		}
		got, err := calls.ParseCode(name)
		if err != nil || got != c {
			t.Errorf("ParseCode(%q) = %v, %v; want %v", name, got, err, c)
		}
	}
	if got, want := calls.CodeName(codes.Code(99)), "99"; got != want {
		t.Errorf("CodeName(99) = %q, want %q", got, want)
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		in      string
		want    codes.Code
		wantErr string
	}{
		{in: "NOT_FOUND", want: codes.NotFound},
		{in: "not_found", want: codes.NotFound},
		{in: "NotFound", want: codes.NotFound},
		{in: " 5 ", want: codes.NotFound},
		{in: "CANCELED", want: codes.Canceled},
		{in: "cancelled", want: codes.Canceled},
		{in: "17", wantErr: "code 17 is out of range 0-16"},
		{in: "-1", wantErr: "code -1 is out of range 0-16"},
		{in: "NOT_FOUNDD", wantErr: `unknown status code "NOT_FOUNDD"; did you mean "NOT_FOUND"?`},
	}
	for _, tt := range tests {
		got, err := calls.ParseCode(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseCode(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestPosAndRuleRef(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{calls.Pos{File: "a.yaml"}.String(), "a.yaml"},
		{calls.Pos{File: "a.yaml", Line: 3}.String(), "a.yaml:3"},
		{calls.Pos{File: "a.yaml", Line: 3, Col: 7}.String(), "a.yaml:3:7"},
		{calls.RuleRef{}.String(), "no rule"},
		{calls.RuleRef{Name: "vote", Pos: calls.Pos{File: "a.yaml", Line: 3, Col: 7}}.String(), `"vote" (a.yaml:3)`},
		{calls.Forward.String(), "forward"},
		{calls.Reverse.String(), "reverse"},
		{calls.Direction(0).String(), "any"},
		{calls.Answered.String(), "answered"},
		{calls.Made.String(), "made"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	b, err := json.Marshal(struct {
		Dir  calls.Direction
		Rule calls.RuleRef
	}{calls.Reverse, calls.RuleRef{Name: "vote", Pos: calls.Pos{File: "a.yaml", Line: 3, Col: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"Dir":"reverse","Rule":{"name":"vote","at":"a.yaml:3:7"}}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestEventRecord(t *testing.T) {
	ev := &calls.Event{
		Dir: calls.Reverse, Origin: calls.Answered, Peer: calls.Peer{BackchannelID: 7},
		Method: "gitaly.RefTransaction/VoteTransaction", Status: status.New(codes.Aborted, "no"),
		Rule: calls.RuleRef{Name: "vote"},
	}
	want := calls.Record{Dir: calls.Reverse, Method: "gitaly.RefTransaction/VoteTransaction", Peer: 7, Code: codes.Aborted, Rule: "vote"}
	if got := ev.Record(); got != want {
		t.Errorf("answered Record() = %+v, want %+v", got, want)
	}
	// A made call counts without its rule: `expect: {rule: X}` counts the
	// calls X answered.
	ev.Origin = calls.Made
	want.Rule = ""
	if got := ev.Record(); got != want {
		t.Errorf("made Record() = %+v, want %+v", got, want)
	}
}

func ExampleObserverFunc() {
	var obs calls.Observer = calls.ObserverFunc(func(ev *calls.Event) {
		fmt.Println(ev.Dir, ev.Origin, ev.Method, calls.CodeName(ev.Status.Code()))
	})
	obs.ObserveCall(&calls.Event{Dir: calls.Forward, Origin: calls.Answered, Method: "acme.Users/Get", Status: status.New(codes.NotFound, "")})
	// Output: forward answered acme.Users/Get NOT_FOUND
}
