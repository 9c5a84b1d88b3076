package dynamic

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

func message(t *testing.T, src Source, name string) protoreflect.MessageDescriptor {
	t.Helper()
	d, err := src.FindSymbol(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor)
}

func TestJSONRequestParser(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		md := message(t, src, "acme.User")
		in := `{"id": "1", "createdAt": "2024-05-01T10:00:00Z", "labels": {"team": "git"}}
{"id":"2","address":{"city":"Lyon"},"extra":{"@type":"type.googleapis.com/gitaly.Repository","storageName":"default"}}{"id": "3", "session_ttl": "1.5s"}
`
		p := NewJSONRequestParser(strings.NewReader(in), src.Types())
		var got []string
		for {
			m := dynamicpb.NewMessage(md)
			err := p.Next(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, toJSON(t, m))
		}
		want := []string{
			`{"id":"1","createdAt":"2024-05-01T10:00:00Z","labels":{"team":"git"}}`,
			`{"id":"2","address":{"city":"Lyon"},"extra":{"@type":"type.googleapis.com/gitaly.Repository","storageName":"default"}}`,
			`{"id":"3","sessionTtl":"1.500s"}`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("parsed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if p.NumRequests() != 3 {
			t.Errorf("NumRequests = %d, want 3", p.NumRequests())
		}
	})
}

func TestJSONRequestParserErrorsNameTheFieldPath(t *testing.T) {
	tests := []struct {
		msg, in, want string
	}{
		{"acme.GetUserRequest", `{"id": 5}`, `request 1: field "id": invalid value for string field id: 5`},
		{"acme.GetUserRequest", `{} {"id": "x", "nope": 1}`, `request 2: field "nope": unknown field "nope" in acme.GetUserRequest (fields: id)`},
		{"acme.CreateUserRequest", `{"user": {"repositories": [{}, {"storage_name": 3}]}}`, `request 1: field "user.repositories[1].storage_name": invalid value for string field storageName: 3`},
		{"acme.CreateUserRequest", `{"user": {"createdAt": "yesterday"}}`, `request 1: field "user.createdAt": invalid google.protobuf.Timestamp value "yesterday"`},
		{"acme.CreateUserRequest", `{"user": {"scores": {"7": {"points": "many"}}}}`, `request 1: field "user.scores[7].points": invalid value for int64 field points: "many"`},
		{"acme.CreateUserRequest", `{"user": {"role": "ROLE_KING"}}`, `request 1: field "user.role": invalid value for enum field role: "ROLE_KING"`},
		{"acme.CreateUserRequest", `{"user": "bob"}`, `request 1: field "user": want a JSON object for acme.User, got a string`},
		{"acme.CreateUserRequest", `{"user": {"email": "a@b", "phone": "1"}}`, `request 1: field "user": error parsing "phone", oneof acme.User.contact is already set`},
		{"acme.CreateUserRequest", `{"user": {"name": "x"}} {"user": `, `request 2: invalid JSON: unexpected EOF`},
		{"acme.CreateUserRequest", `[1, 2]`, `request 1: proto:`},
	}
	eachSource(t, func(t *testing.T, src Source) {
		for _, tc := range tests {
			md := message(t, src, tc.msg)
			p := NewJSONRequestParser(strings.NewReader(tc.in), src.Types())
			var err error
			for err == nil {
				err = p.Next(dynamicpb.NewMessage(md))
			}
			if err == io.EOF || !strings.HasPrefix(strings.ReplaceAll(err.Error(), "\u00a0", " "), tc.want) {
				t.Errorf("%s: error = %v\nwant prefix %s", tc.in, err, tc.want)
			}
		}
	})
	// A request that cannot be read is not called invalid JSON.
	src := filesSource(t)
	unreadable := errors.New("read req: is a directory")
	p := NewJSONRequestParser(iotest.ErrReader(unreadable), src.Types())
	if err := p.Next(dynamicpb.NewMessage(message(t, src, "acme.GetUserRequest"))); !errors.Is(err, unreadable) || err.Error() != "request 1: read: read req: is a directory" {
		t.Errorf("reading fails: error = %v, want request 1: read: ...", err)
	}

	// The path is available to callers that branch on it.
	err := ParseJSON([]byte(`{"user": {"labels": {"a": 1}}}`), dynamicpb.NewMessage(message(t, src, "acme.CreateUserRequest")), src.Types())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "user.labels" {
		t.Errorf("ParseJSON error = %v, want a *FieldError at user.labels", err)
	}
}

func TestTextRequestParser(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		md := message(t, src, "acme.ChatMessage")
		in := "from: \"a\" text: \"hello\"\x1etext: \"second\"\nattachment: \"\\x01\"\x1e\n"
		p, err := NewRequestParser(FormatText, strings.NewReader(in), src.Types())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m := dynamicpb.NewMessage(md)
			err := p.Next(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, toJSON(t, m))
		}
		want := `{"from":"a","text":"hello"}|{"text":"second","attachment":"AQ=="}`
		if strings.Join(got, "|") != want {
			t.Errorf("parsed %s, want %s", strings.Join(got, "|"), want)
		}
		p, _ = NewRequestParser(FormatText, strings.NewReader("text: \"ok\"\x1etxet: 1"), src.Types())
		_ = p.Next(dynamicpb.NewMessage(md))
		if err := p.Next(dynamicpb.NewMessage(md)); err == nil || !strings.HasPrefix(err.Error(), "request 2: ") || !strings.Contains(err.Error(), "txet") {
			t.Errorf("bad text: error = %v, want request 2 naming txet", err)
		}
	})
}

func TestFormatter(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		md := message(t, src, "acme.User")
		m := newMsg(t, md, `{"id": "7", "sessionTtl": "60s", "extra": {"@type": "type.googleapis.com/gitaly.Repository", "relativePath": "a.git"}}`)
		tests := []struct {
			f    Format
			opts FormatOptions
			want string
		}{
			{FormatJSON, FormatOptions{}, "{\n  \"id\": \"7\",\n  \"sessionTtl\": \"60s\",\n  \"extra\": {\n    \"@type\": \"type.googleapis.com/gitaly.Repository\",\n    \"relativePath\": \"a.git\"\n  }\n}"},
			{FormatJSON, FormatOptions{Compact: true, ProtoNames: true}, `{"id":"7","session_ttl":"60s","extra":{"@type":"type.googleapis.com/gitaly.Repository","relative_path":"a.git"}}`},
			{FormatText, FormatOptions{Compact: true}, `id:"7" session_ttl:{seconds:60} extra:{[type.googleapis.com/gitaly.Repository]:{relative_path:"a.git"}}`},
		}
		for _, tc := range tests {
			f, err := NewFormatter(tc.f, src.Types(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f(m)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if tc.f == FormatText {
				got = strings.Join(strings.Fields(got), " ")
			}
			if got != want {
				t.Errorf("%s %+v:\ngot  %s\nwant %s", tc.f, tc.opts, got, want)
			}
		}
		f, _ := NewFormatter(FormatJSON, src.Types(), FormatOptions{EmitDefaults: true, Compact: true})
		got, _ := f(newMsg(t, message(t, src, "gitaly.VoteTransactionResponse"), `{}`))
		if got != `{"state":"COMMIT"}` {
			t.Errorf("emit defaults: %s", got)
		}
	})
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) succeeded")
	}
}

func TestFormatStatus(t *testing.T) {
	eachSource(t, func(t *testing.T, src Source) {
		conflict := newMsg(t, message(t, src, "acme.UserConflict"), `{"existingId": "u1", "field": "name"}`)
		info, _ := anypb.New(&errdetails.ErrorInfo{Reason: "USER_NOT_FOUND", Domain: "acme.example"})
		packed, _ := anypb.New(conflict)
		unknown := &anypb.Any{TypeUrl: "type.googleapis.com/nobody.Knows", Value: []byte{1, 2}}
		st := status.FromProto(&spb.Status{Code: int32(codes.NotFound), Message: `user "9" not found`, Details: []*anypb.Any{info, packed, unknown}})
		got := FormatStatus(st, src.Types())
		want := "ERROR:\n" +
			"  Code: NotFound\n" +
			"  Message: user \"9\" not found\n" +
			"  Details:\n" +
			"  1)\t{\n    \t  \"@type\": \"type.googleapis.com/google.rpc.ErrorInfo\",\n    \t  \"reason\": \"USER_NOT_FOUND\",\n    \t  \"domain\": \"acme.example\"\n    \t}\n" +
			"  2)\t{\n    \t  \"@type\": \"type.googleapis.com/acme.UserConflict\",\n    \t  \"existingId\": \"u1\",\n    \t  \"field\": \"name\"\n    \t}\n" +
			"  3)\t{\n    \t  \"@type\": \"type.googleapis.com/nobody.Knows\",\n    \t  \"value\": \"AQI=\"\n    \t}\n"
		if got != want {
			t.Errorf("FormatStatus:\n%s\nwant:\n%s", got, want)
		}
		js := StatusJSON(st, src.Types(), FormatOptions{Compact: true, ProtoNames: true})
		wantJS := `{"code":5,"codeName":"NotFound","message":"user \"9\" not found","details":[` +
			`{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"USER_NOT_FOUND","domain":"acme.example"},` +
			`{"@type":"type.googleapis.com/acme.UserConflict","existing_id":"u1","field":"name"},` +
			`{"@type":"type.googleapis.com/nobody.Knows","value":"AQI="}]}`
		if js != wantJS {
			t.Errorf("StatusJSON:\n%s\nwant\n%s", js, wantJS)
		}
	})
}

func TestParseHeaders(t *testing.T) {
	md, err := ParseHeaders([]string{"X-Transaction: 42", "auth:  a b ", "auth: c"})
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Get("x-transaction"); len(got) != 1 || got[0] != "42" {
		t.Errorf("x-transaction = %q", got)
	}
	if got := md.Get("auth"); len(got) != 2 || got[0] != "a b" || got[1] != "c" {
		t.Errorf("auth = %q", got)
	}
	if _, err := ParseHeaders([]string{"no colon"}); err == nil {
		t.Error("ParseHeaders accepted a header without a colon")
	}
}
