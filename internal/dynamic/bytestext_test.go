package dynamic

import (
	"context"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// bytesProto has bytes in every place protojson can put them.
const bytesProto = `syntax = "proto3";
package t;
import "google/protobuf/any.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/wrappers.proto";
message Inner { bytes b = 1; string s = 2; }
message T {
  bytes one = 1;
  repeated bytes list = 2;
  map<string, bytes> by_name = 3;
  map<int32, Inner> inners = 4;
  Inner inner = 5;
  repeated Inner inner_list = 6;
  google.protobuf.BytesValue wrapped = 7;
  google.protobuf.Any any = 8;
  google.protobuf.Struct free = 9;
  string text = 10;
}
`

func compileBytesProto(t *testing.T) (protoreflect.MessageDescriptor, *protoregistry.Types) {
	t.Helper()
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"t.proto": bytesProto}),
	})}
	files, err := c.Compile(context.Background(), "t.proto")
	if err != nil {
		t.Fatal(err)
	}
	types := new(protoregistry.Types)
	msgs := files[0].Messages()
	for i := 0; i < msgs.Len(); i++ {
		if err := types.RegisterMessage(dynamicpb.NewMessageType(msgs.Get(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []protoreflect.FullName{"google.protobuf.BytesValue", "google.protobuf.Struct"} {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			t.Fatal(err)
		}
		_ = types.RegisterMessage(mt)
	}
	return msgs.ByName("T"), types
}

// TestBytesAsText checks that every bytes value that is UTF-8 shows as
// text, wherever it is (lists, maps, nested messages, BytesValue, inside
// an Any), that other bytes stay base64, and that nothing else changes.
func TestBytesAsText(t *testing.T) {
	md, types := compileBytesProto(t)
	tests := []struct {
		name, in, want string
	}{
		{"field", `{"one": "bWFpbg=="}`, `{"one":"main"}`},
		{"not UTF-8 stays base64", `{"one": "AP8="}`, `{"one":"AP8="}`},
		{"list", `{"list": ["bWFpbg==", "AP8=", ""]}`, `{"list":["main","AP8=",""]}`},
		{"map of bytes", `{"byName": {"a": "cmVmcy9oZWFkcy9tYWlu"}}`, `{"byName":{"a":"refs/heads/main"}}`},
		{"map of messages", `{"inners": {"7": {"b": "eA==", "s": "eA=="}}}`, `{"inners":{"7":{"b":"x","s":"eA=="}}}`},
		{"nested", `{"inner": {"b": "eA=="}, "innerList": [{"b": "eQ=="}]}`, `{"inner":{"b":"x"},"innerList":[{"b":"y"}]}`},
		{"proto names", `{"inner_list": [{"b": "eQ=="}], "by_name": {"k": "eQ=="}}`, `{"inner_list":[{"b":"y"}],"by_name":{"k":"y"}}`},
		{"BytesValue", `{"wrapped": "bWFpbg=="}`, `{"wrapped":"main"}`},
		{"Any of a message", `{"any": {"@type": "type.googleapis.com/t.Inner", "b": "bWFpbg==", "s": "bWFpbg=="}}`, `{"any":{"@type":"type.googleapis.com/t.Inner","b":"main","s":"bWFpbg=="}}`},
		{"Any of BytesValue", `{"any": {"@type": "type.googleapis.com/google.protobuf.BytesValue", "value": "bWFpbg=="}}`, `{"any":{"@type":"type.googleapis.com/google.protobuf.BytesValue","value":"main"}}`},
		{"Any of an unknown type", `{"any": {"@type": "type.googleapis.com/x.Nope", "b": "bWFpbg=="}}`, `{"any":{"@type":"type.googleapis.com/x.Nope","b":"bWFpbg=="}}`},
		{"Struct and strings untouched", `{"free": {"one": "bWFpbg==", "n": 1.5}, "text": "bWFpbg=="}`, `{"free":{"one":"bWFpbg==","n":1.5},"text":"bWFpbg=="}`},
		{"order kept", `{"text": "a", "one": "eA==", "inner": {"s": "b", "b": "eQ=="}}`, `{"text":"a","one":"x","inner":{"s":"b","b":"y"}}`},
		{"escapes", `{"one": "ImEiCg=="}`, `{"one":"\"a\"\n"}`},
		{"no HTML escapes", `{"one": "PGE+Jg==", "text": "<b>"}`, `{"one":"<a>&","text":"<b>"}`},
		{"not JSON", `{"one": `, `{"one": `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(BytesAsText([]byte(tt.in), md, types)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestFormatterBytesText checks --bytes text through NewFormatter on the
// corpus, in both JSON layouts, and that the text format is untouched.
func TestFormatterBytesText(t *testing.T) {
	md := corpusMessage("gitaly.VoteTransactionRequest")
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(`{"transaction_id": "7", "node": "gitaly-1", "reference_updates_hash": "cmVmcy9oZWFkcy9tYWlu"}`), m); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		opts FormatOptions
		want string
	}{
		{FormatOptions{Compact: true}, `{"transactionId":"7","node":"gitaly-1","referenceUpdatesHash":"cmVmcy9oZWFkcy9tYWlu"}`},
		{FormatOptions{Compact: true, Bytes: BytesText}, `{"transactionId":"7","node":"gitaly-1","referenceUpdatesHash":"refs/heads/main"}`},
		{FormatOptions{Bytes: BytesText, ProtoNames: true}, "{\n  \"transaction_id\": \"7\",\n  \"node\": \"gitaly-1\",\n  \"reference_updates_hash\": \"refs/heads/main\"\n}"},
	} {
		f, err := NewFormatter(FormatJSON, nil, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f(m)
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %s %v, want %s", tt.opts, got, err, tt.want)
		}
	}
	if _, err := ParseBytesMode("hex"); err == nil {
		t.Error("ParseBytesMode(hex): want an error")
	}
}
