package corpus_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
)

// gitalyMethods are Gitaly's RPCs the corpus has, as "request -> response"
// ("stream" marks a streaming side). The first group is what
// ../../shared/reference/wire-facts.md ("Gitaly's interface") lists; the
// rest was read from Gitaly's own protos.
var gitalyMethods = map[string]string{
	"gitaly.RefTransaction/VoteTransaction":    "gitaly.VoteTransactionRequest -> gitaly.VoteTransactionResponse",
	"gitaly.RefTransaction/StopTransaction":    "gitaly.StopTransactionRequest -> gitaly.StopTransactionResponse",
	"gitaly.OperationService/UserCreateBranch": "gitaly.UserCreateBranchRequest -> gitaly.UserCreateBranchResponse",
	"gitaly.RefService/FindDefaultBranchName":  "gitaly.FindDefaultBranchNameRequest -> gitaly.FindDefaultBranchNameResponse",
	"gitaly.RefService/DeleteRefs":             "gitaly.DeleteRefsRequest -> gitaly.DeleteRefsResponse",
	"gitaly.RefService/FindAllBranches":        "gitaly.FindAllBranchesRequest -> stream gitaly.FindAllBranchesResponse",
	"gitaly.OperationService/UserDeleteBranch": "gitaly.UserDeleteBranchRequest -> gitaly.UserDeleteBranchResponse",
	// The sidechannel RPCs (sidechannel-wire-facts.md names them; their
	// messages are from Gitaly's smarthttp.proto and ssh.proto).
	"gitaly.SmartHTTPService/PostUploadPackWithSidechannel": "gitaly.PostUploadPackWithSidechannelRequest -> gitaly.PostUploadPackWithSidechannelResponse",
	"gitaly.SSHService/SSHUploadPackWithSidechannel":        "gitaly.SSHUploadPackWithSidechannelRequest -> gitaly.SSHUploadPackWithSidechannelResponse",
}

// gitalyMessages are the fields of Gitaly's messages the corpus has, as
// "name number [repeated] type". Messages the corpus has must list every
// field it gives them: a subset of Gitaly is fine, an invention is not.
var gitalyMessages = map[string][]string{
	// From wire-facts.md.
	"gitaly.VoteTransactionRequest": {"repository 1 gitaly.Repository", "transaction_id 2 uint64", "node 3 string",
		"reference_updates_hash 4 bytes", "phase 5 gitaly.VoteTransactionRequest.Phase"},
	"gitaly.VoteTransactionResponse":  {"state 1 gitaly.VoteTransactionResponse.TransactionState"},
	"gitaly.StopTransactionRequest":   {"repository 1 gitaly.Repository", "transaction_id 2 uint64"},
	"gitaly.StopTransactionResponse":  {},
	"gitaly.UserCreateBranchRequest":  {"repository 1 gitaly.Repository", "branch_name 2 bytes", "user 3 gitaly.User", "start_point 4 bytes"},
	"gitaly.UserCreateBranchResponse": {"branch 1 gitaly.Branch"},
	"gitaly.User":                     {"gl_id 1 string", "name 2 bytes", "email 3 bytes", "gl_username 4 string", "timezone 5 string"},
	"gitaly.Repository": {"storage_name 2 string", "relative_path 3 string", "git_object_directory 4 string",
		"git_alternate_object_directories 5 repeated string", "gl_repository 6 string", "gl_project_path 8 string"},
	"gitaly.Branch":                        {"name 1 bytes", "target_commit 2 gitaly.GitCommit"},
	"gitaly.FindDefaultBranchNameRequest":  {"repository 1 gitaly.Repository", "head_only 2 bool"},
	"gitaly.FindDefaultBranchNameResponse": {"name 1 bytes"},
	// From Gitaly's protos (shared.proto, ref.proto, operations.proto).
	"gitaly.GitCommit": {"id 1 string", "subject 2 bytes", "body 3 bytes", "author 4 gitaly.CommitAuthor",
		"committer 5 gitaly.CommitAuthor", "parent_ids 6 repeated string", "body_size 7 int64", "tree_id 9 string"},
	"gitaly.CommitAuthor":                   {"name 1 bytes", "email 2 bytes", "date 3 google.protobuf.Timestamp", "timezone 4 bytes"},
	"gitaly.FindAllBranchesRequest":         {"repository 1 gitaly.Repository", "merged_only 2 bool", "merged_branches 3 repeated bytes"},
	"gitaly.FindAllBranchesResponse":        {"branches 1 repeated gitaly.FindAllBranchesResponse.Branch"},
	"gitaly.FindAllBranchesResponse.Branch": {"name 1 bytes", "target 2 gitaly.GitCommit"},
	"gitaly.DeleteRefsRequest":              {"repository 1 gitaly.Repository", "except_with_prefix 2 repeated bytes", "refs 3 repeated bytes"},
	"gitaly.DeleteRefsResponse":             {"git_error 1 string"},
	"gitaly.UserDeleteBranchRequest":        {"repository 1 gitaly.Repository", "branch_name 2 bytes", "user 3 gitaly.User", "expected_old_oid 4 string"},
	"gitaly.UserDeleteBranchResponse":       {},
	// From Gitaly's smarthttp.proto and ssh.proto.
	"gitaly.PostUploadPackWithSidechannelRequest":  {"repository 1 gitaly.Repository", "git_config_options 2 repeated string", "git_protocol 3 string"},
	"gitaly.PostUploadPackWithSidechannelResponse": {},
	"gitaly.SSHUploadPackWithSidechannelRequest":   {"repository 1 gitaly.Repository", "git_config_options 2 repeated string", "git_protocol 3 string"},
	"gitaly.SSHUploadPackWithSidechannelResponse":  {},
}

// gitalyEnums are the values of Gitaly's enums, as "NAME number".
var gitalyEnums = map[string][]string{
	"gitaly.VoteTransactionRequest.Phase":             {"UNKNOWN_PHASE 0", "PREPARED_PHASE 1", "COMMITTED_PHASE 2", "SYNCHRONIZED_PHASE 3"},
	"gitaly.VoteTransactionResponse.TransactionState": {"COMMIT 0", "ABORT 1", "STOP 2"},
}

// notInGitaly are methods bcctl's corpus once invented: real Gitaly has
// none of them (RefService/CreateBranch went with Gitaly's Ruby code).
var notInGitaly = []string{"gitaly.RefService/CreateBranch", "gitaly.RefService/DeleteBranch"}

// TestGitalyInterface checks the corpus's gitaly package against Gitaly's
// real interface: every method and message it has is Gitaly's, with
// Gitaly's names, field numbers, types and enum values.
func TestGitalyInterface(t *testing.T) {
	src, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatal(err)
	}
	var files []protoreflect.FileDescriptor
	src.Registry().RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Package() == "gitaly" {
			files = append(files, fd)
		}
		return true
	})
	if len(files) == 0 {
		t.Fatal("the corpus has no gitaly files")
	}
	methods := map[string]string{}
	messages := map[string][]string{}
	enums := map[string][]string{}
	for _, fd := range files {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				methods[string(sd.FullName())+"/"+string(md.Name())] = methodShape(md)
			}
		}
		collectMessages(fd.Messages(), messages, enums)
		if fd.Enums().Len() > 0 {
			t.Errorf("%s: top-level enums %v are not in the facts", fd.Path(), fd.Enums())
		}
	}
	compare(t, "method", methods, gitalyMethods)
	compareLists(t, "message", messages, gitalyMessages)
	compareLists(t, "enum", enums, gitalyEnums)
	for _, m := range notInGitaly {
		if _, ok := methods[m]; ok {
			t.Errorf("the corpus has %s, which Gitaly does not", m)
		}
	}
}

func methodShape(md protoreflect.MethodDescriptor) string {
	in, out := string(md.Input().FullName()), string(md.Output().FullName())
	if md.IsStreamingClient() {
		in = "stream " + in
	}
	if md.IsStreamingServer() {
		out = "stream " + out
	}
	return in + " -> " + out
}

func collectMessages(list protoreflect.MessageDescriptors, messages, enums map[string][]string) {
	for i := 0; i < list.Len(); i++ {
		md := list.Get(i)
		fields := []string{}
		for j := 0; j < md.Fields().Len(); j++ {
			fields = append(fields, fieldFact(md.Fields().Get(j)))
		}
		messages[string(md.FullName())] = fields
		for j := 0; j < md.Enums().Len(); j++ {
			ed := md.Enums().Get(j)
			values := []string{}
			for k := 0; k < ed.Values().Len(); k++ {
				v := ed.Values().Get(k)
				values = append(values, fmt.Sprintf("%s %d", v.Name(), v.Number()))
			}
			enums[string(ed.FullName())] = values
		}
		collectMessages(md.Messages(), messages, enums)
	}
}

// fieldFact writes a field as the facts do: "name number [repeated] type".
func fieldFact(fd protoreflect.FieldDescriptor) string {
	typ := fd.Kind().String()
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		typ = string(fd.Message().FullName())
	case protoreflect.EnumKind:
		typ = string(fd.Enum().FullName())
	}
	if fd.IsList() {
		typ = "repeated " + typ
	}
	return fmt.Sprintf("%s %d %s", fd.Name(), fd.Number(), typ)
}

func compare(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s %s: the corpus does not have it", what, name)
		case g != w:
			t.Errorf("%s %s: the corpus has %s, Gitaly has %s", what, name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s %s: the corpus has it, the facts do not (Gitaly's interface must not be invented)", what, name)
		}
	}
}

func compareLists(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	join := func(m map[string][]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			v = append([]string(nil), v...)
			sort.Strings(v)
			out[k] = strings.Join(v, ", ")
		}
		return out
	}
	compare(t, what, join(got), join(want))
}
