package journal

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// encodeCases are entries whose every field, and every string's escape,
// must come out of AppendJSON as json.Marshal writes them.
func encodeCases() []Entry {
	weird := "a \"quote\", a \\ back\\slash, <html> & more, \u2028\u2029, \x01\x1f\t\n\r\b\f, invalid \xff\xfe, ünïcödé, 日本"
	id := int64(7)
	return []Entry{
		{},
		{ID: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Dir: DirForward, Origin: OriginAnswered, Method: "acme.Users/Get", DurationMS: 0.023},
		{
			ID: 2, Cause: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Dir: DirReverse, Origin: OriginMade, By: weird,
			Peer:        &Peer{ID: 3, Addr: "127.0.0.1:1"},
			Method:      weird,
			Metadata:    map[string][]string{"b": {"1", weird}, "a": {}, "c": nil, weird: {"x"}},
			Requests:    []json.RawMessage{json.RawMessage(`{"a":1,"b":"x, y"}`), json.RawMessage(`{"a": 1, "b" : [1, 2]}`), nil},
			Header:      map[string][]string{"h": {"v"}},
			Responses:   []json.RawMessage{json.RawMessage(`{}`)},
			Trailer:     map[string][]string{"t-bin": {"AAE="}},
			Status:      &Status{Code: "ABORTED", Message: weird, Details: []json.RawMessage{json.RawMessage(`{"@type":"x"}`)}},
			DurationMS:  1234.5678,
			Rule:        &Rule{Name: weird, Pos: "a.yaml:1:2"},
			Step:        "b.yaml:3:4",
			Relay:       &Relay{Conn: 1, CalleeMS: 0.5, AddedMS: 0.1, EndedBy: "client", Gone: true, RequestCount: 2},
			Stream:      &Stream{Conn: 2, Kind: weird, ChannelID: &id, ToClient: 10},
			Sidechannel: &Sidechannel{ID: 5, BodyBytes: 3, DurationMS: 1e-7, Error: weird},
		},
		{ID: 3, Peer: &Peer{}, Status: &Status{}, Rule: &Rule{}, DurationMS: 1e-7},
		{ID: 4, Peer: &Peer{Addr: "x"}, DurationMS: 1e22},
		{ID: 5, Peer: &Peer{ID: 9}, DurationMS: -0.5},
		{ID: 6, Time: time.Now()}, // with a monotonic reading
		{ID: 7, Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: 8, Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("s", -(23*3600+59*60+59)))},
		{ID: 9, Time: time.Date(2026, 6, 1, 12, 0, 0, 100, time.FixedZone("s", 5*3600+30*60+7))},
	}
}

// TestAppendJSONMatchesEncodingJSON checks AppendJSON against json.Marshal.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for i, e := range encodeCases() {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.AppendJSON(nil)
		if err != nil {
			t.Fatalf("case %d: AppendJSON: %v", i, err)
		}
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestAppendJSONRejectsWhatEncodingJSONRejects checks that a value JSON
// cannot hold is an error, not a broken line.
func TestAppendJSONRejectsWhatEncodingJSONRejects(t *testing.T) {
	for _, e := range []Entry{
		{DurationMS: math.NaN()},
		{Requests: []json.RawMessage{json.RawMessage(`{"a": nope}`)}},
		{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600))},
	} {
		if _, err := json.Marshal(e); err == nil {
			t.Fatalf("json.Marshal accepted %+v", e)
		}
		if _, err := e.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON accepted %+v", e)
		}
	}
}

// FuzzAppendJSON compares AppendJSON with json.Marshal on any strings and
// numbers.
func FuzzAppendJSON(f *testing.F) {
	f.Add("acme.Users/Get", "k", "v", 0.5, uint64(1))
	f.Add("<&>\u2028\xff", "\x00", "\"\\", 1e-9, uint64(0))
	f.Fuzz(func(t *testing.T, s, k, v string, ms float64, id uint64) {
		e := Entry{ID: id, Cause: id / 2, Dir: s, Method: s, By: v, Metadata: map[string][]string{k: {v, s}}, DurationMS: ms,
			Peer: &Peer{ID: id, Addr: k}, Status: &Status{Code: s, Message: v}, Rule: &Rule{Name: k}, Step: v}
		want, werr := json.Marshal(e)
		got, gerr := e.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("json.Marshal error %v, AppendJSON error %v", werr, gerr)
		}
		if werr == nil && string(got) != string(want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
