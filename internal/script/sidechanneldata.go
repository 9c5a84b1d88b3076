package script

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// SidechannelKeep is how much of a sidechannel's body or response a script
// keeps for `text` and `lines` (matchers and captures); size and sha256
// always cover every byte.
const SidechannelKeep = 1 << 20

// sidechannelData is the type of a sidechannel's body or response as a
// script sees it: in expect matchers and in the capture of `as`. It is a
// message type so that matchers and templates are checked as they are for
// a call's messages.
var sidechannelData = func() protoreflect.MessageDescriptor {
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, repeated bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum()}
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("bcctl/script/sidechannel.proto"),
		Package: proto.String("bcctl.script"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("SidechannelData"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("id", 1, descriptorpb.FieldDescriptorProto_TYPE_INT64, false),
				field("size", 2, descriptorpb.FieldDescriptorProto_TYPE_INT64, false),
				field("sha256", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, false),
				field("text", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, false),
				field("lines", 5, descriptorpb.FieldDescriptorProto_TYPE_STRING, true),
				field("truncated", 6, descriptorpb.FieldDescriptorProto_TYPE_BOOL, false),
			},
		}},
	}, nil)
	if err != nil {
		panic("script: the sidechannel data type does not build: " + err.Error())
	}
	return fd.Messages().Get(0)
}()

// sidechannelFields lists the fields of sidechannelData, for docs and
// messages.
var sidechannelFields = []string{"id", "size", "sha256", "text", "lines", "truncated"}

// StreamData counts, hashes and keeps the start of the bytes of one way of
// a sidechannel. It is an io.Writer; the zero value is not ready, use
// NewStreamData.
type StreamData struct {
	id   int64
	n    int64
	hash hash.Hash
	kept []byte
}

// NewStreamData returns a StreamData for the sidechannel with ID id.
func NewStreamData(id int64) *StreamData { return &StreamData{id: id, hash: sha256.New()} }

// Write records p.
func (s *StreamData) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	s.hash.Write(p)
	if room := SidechannelKeep - len(s.kept); room > 0 {
		s.kept = append(s.kept, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Size is the number of bytes written.
func (s *StreamData) Size() int64 { return s.n }

// SHA256 is the hex SHA-256 of every byte written.
func (s *StreamData) SHA256() string { return hex.EncodeToString(s.hash.Sum(nil)) }

// json is the value matchers and templates see (sidechannelData's fields,
// as protojson would give them).
func (s *StreamData) json() map[string]any {
	lines := []any{}
	for _, l := range pktLines(s.kept) {
		lines = append(lines, l)
	}
	return map[string]any{
		"id":        json.Number(strconv.FormatInt(s.id, 10)),
		"size":      json.Number(strconv.FormatInt(s.n, 10)),
		"sha256":    s.SHA256(),
		"text":      strings.ToValidUTF8(string(s.kept), "\uFFFD"),
		"lines":     lines,
		"truncated": s.n > int64(len(s.kept)),
	}
}

// pktLines reads b as git pkt-lines, which is what Gitaly's sidechannels
// carry (upload-pack's input and output), and returns the payload of each
// data line without its newline; flush, delimiter and response-end
// packets are left out. It stops at the first thing that is not a
// pkt-line.
func pktLines(b []byte) []string {
	var out []string
	for len(b) >= 4 {
		n, err := strconv.ParseUint(string(b[:4]), 16, 16)
		if err != nil {
			break
		}
		if n < 4 {
			b = b[4:]
			continue
		}
		if int(n) > len(b) {
			break
		}
		out = append(out, strings.TrimSuffix(string(b[4:n]), "\n"))
		b = b[n:]
	}
	return out
}
