package journal

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// dynamicOf returns m as a dynamic message, as bcctl serve holds messages.
func dynamicOf(t testing.TB, m proto.Message) proto.Message {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := dynamicpb.NewMessage(m.ProtoReflect().Descriptor())
	if err := proto.Unmarshal(data, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRendererRendersAsMessageJSON renders messages that repeat, that
// differ, that hold maps (whose entries a wire encoding may put in any
// order), that are too large to be remembered, and more than the Renderer
// remembers, from several goroutines at once: each comes out as
// MessageJSON renders it.
func TestRendererRendersAsMessageJSON(t *testing.T) {
	var msgs []proto.Message
	for i := range 3 * renderCacheLen / 2 {
		body := []byte(fmt.Sprintf("body %d", i%(renderCacheLen+10)))
		msgs = append(msgs, dynamicOf(t, &testpb.SimpleRequest{ResponseSize: int32(i % 3), Payload: &testpb.Payload{Body: body}}))
	}
	fields := map[string]any{}
	for i := range 20 {
		fields[fmt.Sprintf("k%d", i)] = i
	}
	st, err := structpb.NewStruct(map[string]any{"fields": fields, "list": []any{"a", 1.5, true}})
	if err != nil {
		t.Fatal(err)
	}
	large := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(strings.Repeat("x", 2*renderCacheMaxWire))}}
	for range 50 {
		msgs = append(msgs, dynamicOf(t, st), st, dynamicOf(t, large), large)
	}

	for _, r := range []Rendering{{}, {EmitDefaults: true}} {
		renderer := NewRenderer(r)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range msgs {
					m := msgs[(i+g*len(msgs)/4)%len(msgs)]
					if got, want := string(renderer.MessageJSON(m)), string(MessageJSON(m, r)); got != want {
						t.Errorf("%+v: renders %s, want %s", r, got, want)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

// TestHoldsMaps checks which types can hold a map, directly or in a
// message they hold, recursive types included, and which messages the
// Renderer encodes deterministically: those that hold a map that is set.
func TestHoldsMaps(t *testing.T) {
	for _, tc := range []struct {
		md   protoreflect.MessageDescriptor
		want bool
	}{
		{(&testpb.Payload{}).ProtoReflect().Descriptor(), false},
		{(&testpb.SimpleRequest{}).ProtoReflect().Descriptor(), true}, // orca_per_query_report.request_cost
		{(&structpb.Struct{}).ProtoReflect().Descriptor(), true},
		{(&structpb.Value{}).ProtoReflect().Descriptor(), true},     // struct_value
		{(&structpb.ListValue{}).ProtoReflect().Descriptor(), true}, // values.struct_value
	} {
		if got := holdsMaps(tc.md, map[protoreflect.FullName]bool{}); got != tc.want {
			t.Errorf("holdsMaps(%s) = %v, want %v", tc.md.FullName(), got, tc.want)
		}
	}

	r := NewRenderer(Rendering{})
	st, err := structpb.NewStruct(map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m    proto.Message
		want bool
	}{
		{&testpb.Payload{Body: []byte("x")}, false},
		{&testpb.SimpleRequest{Payload: &testpb.Payload{}}, false},
		{&testpb.SimpleRequest{OrcaPerQueryReport: &testpb.TestOrcaReport{CpuUtilization: 1}}, false},
		{&testpb.SimpleRequest{OrcaPerQueryReport: &testpb.TestOrcaReport{RequestCost: map[string]float64{"a": 1}}}, true},
		{st, true},
		{&structpb.Struct{}, false},
		{structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStructValue(st)}}), true},
		{structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1)}}), false},
	} {
		for _, m := range []proto.Message{tc.m, dynamicOf(t, tc.m)} {
			if got := r.holdsMap(m.ProtoReflect()); got != tc.want {
				t.Errorf("holdsMap(%T %v) = %v, want %v", m, m, got, tc.want)
			}
		}
	}
}

// TestStatusOf checks a call's status in the journal: OK for nil, the code
// and message, and the details decoded, with their type, when there are
// some.
func TestStatusOf(t *testing.T) {
	withDetails, err := status.New(codes.Aborted, "vote failed").WithDetails(durationpb.New(1500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		st   *status.Status
		want string
	}{
		{nil, `{"code":"OK"}`},
		{status.New(codes.OK, ""), `{"code":"OK"}`},
		{status.New(codes.NotFound, "no such branch"), `{"code":"NOT_FOUND","message":"no such branch"}`},
		{withDetails, `{"code":"ABORTED","message":"vote failed","details":[{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}]}`},
	} {
		got, err := json.Marshal(StatusOf(tc.st, nil))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("StatusOf(%v) = %s, want %s", tc.st, got, tc.want)
		}
	}
}
