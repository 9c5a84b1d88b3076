package dynamic

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers the google.rpc error details
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// detailResolver resolves status details through resolver, then the
// built-in registry (which knows the google.rpc error details: ErrorInfo,
// BadRequest, RetryInfo, ...).
func detailResolver(resolver TypeResolver) TypeResolver {
	if resolver == nil {
		return protoregistry.GlobalTypes
	}
	return ChainTypes(resolver, protoregistry.GlobalTypes)
}

// StatusDetailsJSON returns each detail of st as a JSON object with its
// "@type". Details of types that resolver (or the built-in google.rpc
// registry) does not know are shown as {"@type": ..., "value": base64}.
func StatusDetailsJSON(st *status.Status, resolver TypeResolver, opts FormatOptions) []string {
	m := protojson.MarshalOptions{
		Multiline:       !opts.Compact,
		Indent:          opts.Indent,
		EmitUnpopulated: opts.EmitDefaults,
		UseProtoNames:   opts.ProtoNames,
		Resolver:        detailResolver(resolver),
	}
	if m.Multiline && m.Indent == "" {
		m.Indent = "  "
	}
	var out []string
	for _, d := range st.Proto().GetDetails() {
		out = append(out, detailJSON(d, m))
	}
	return out
}

func detailJSON(d *anypb.Any, m protojson.MarshalOptions) string {
	data, err := m.Marshal(d)
	if err == nil {
		return stableJSON(data, !m.Multiline, m.Indent)
	}
	raw := map[string]string{"@type": d.GetTypeUrl(), "value": base64.StdEncoding.EncodeToString(d.GetValue())}
	var b []byte
	if m.Multiline {
		b, _ = json.MarshalIndent(raw, "", m.Indent)
	} else {
		b, _ = json.Marshal(raw)
	}
	return string(b)
}

// FormatStatus renders a non-OK status for people, the way grpcurl does:
//
//	ERROR:
//	  Code: NotFound
//	  Message: user "42" not found
//	  Details:
//	  1)	{
//	    	  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
//	    	  ...
//	    	}
//
// Details are decoded with resolver and the google.rpc error details.
func FormatStatus(st *status.Status, resolver TypeResolver) string {
	var b strings.Builder
	b.WriteString("ERROR:\n")
	fmt.Fprintf(&b, "  Code: %s\n", st.Code())
	fmt.Fprintf(&b, "  Message: %s\n", st.Message())
	details := StatusDetailsJSON(st, resolver, FormatOptions{})
	if len(details) > 0 {
		b.WriteString("  Details:\n")
		for i, d := range details {
			prefix := fmt.Sprintf("  %d)\t", i+1)
			for j, line := range strings.Split(d, "\n") {
				if j == 0 {
					b.WriteString(prefix + line + "\n")
				} else {
					b.WriteString("    \t" + line + "\n")
				}
			}
		}
	}
	return b.String()
}

// StatusJSON renders a status as a google.rpc.Status JSON object
// ({"code": 5, "message": ..., "details": [...]}) with its details decoded
// as StatusDetailsJSON does.
func StatusJSON(st *status.Status, resolver TypeResolver, opts FormatOptions) string {
	type jsonStatus struct {
		Code    int               `json:"code"`
		Name    string            `json:"codeName"`
		Message string            `json:"message"`
		Details []json.RawMessage `json:"details,omitempty"`
	}
	js := jsonStatus{Code: int(st.Code()), Name: st.Code().String(), Message: st.Message()}
	for _, d := range StatusDetailsJSON(st, resolver, FormatOptions{Compact: true, ProtoNames: opts.ProtoNames, EmitDefaults: opts.EmitDefaults}) {
		js.Details = append(js.Details, json.RawMessage(d))
	}
	var data []byte
	if opts.Compact {
		data, _ = json.Marshal(js)
	} else {
		indent := opts.Indent
		if indent == "" {
			indent = "  "
		}
		data, _ = json.MarshalIndent(js, "", indent)
	}
	return string(data)
}
