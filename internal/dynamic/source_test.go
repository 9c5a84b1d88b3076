package dynamic

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/reflection"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestListServices(t *testing.T) {
	schema := []protoreflect.FullName{"acme.Users", "gitaly.OperationService", "gitaly.RefService", "gitaly.RefTransaction", "gitaly.SSHService", "gitaly.SmartHTTPService"}
	eachSource(t, func(t *testing.T, src Source) {
		got, err := src.ListServices(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		want := schema
		if _, ok := src.(*ReflectionSource); ok {
			// The dynamic server also serves health and reflection, and
			// lists nothing else (no stray services from the binary).
			want = []protoreflect.FullName{"acme.Users", "gitaly.OperationService", "gitaly.RefService", "gitaly.RefTransaction", "gitaly.SSHService", "gitaly.SmartHTTPService",
				"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListServices = %v, want %v", got, want)
		}
	})
}

func TestFindSymbol(t *testing.T) {
	tests := []struct {
		name     string
		wantName protoreflect.FullName
		wantKind string
	}{
		{"acme.Users", "acme.Users", "service"},
		{"acme.Users.Get", "acme.Users.Get", "method"},
		{"acme.Users/Get", "acme.Users.Get", "method"},
		{"/acme.Users/Chat", "acme.Users.Chat", "method"},
		{"acme.User", "acme.User", "message"},
		{"acme.Role", "acme.Role", "enum"},
		{"gitaly.VoteTransactionResponse.TransactionState", "gitaly.VoteTransactionResponse.TransactionState", "enum"},
		{"gitaly.Repository", "gitaly.Repository", "message"},
		{"acme.UserConflict", "acme.UserConflict", "message"},
		{"google.protobuf.Timestamp", "google.protobuf.Timestamp", "message"},
	}
	eachSource(t, func(t *testing.T, src Source) {
		for _, tc := range tests {
			d, err := src.FindSymbol(testContext(t), tc.name)
			if err != nil {
				t.Errorf("FindSymbol(%q): %v", tc.name, err)
				continue
			}
			if d.FullName() != tc.wantName || Kind(d) != tc.wantKind {
				t.Errorf("FindSymbol(%q) = %s %s, want %s %s", tc.name, Kind(d), d.FullName(), tc.wantKind, tc.wantName)
			}
		}
		for _, missing := range []string{"acme.Nope", "acme.Users/Nope", "nope", "bad name!"} {
			if _, err := src.FindSymbol(testContext(t), missing); !errors.Is(err, ErrNotFound) {
				t.Errorf("FindSymbol(%q) error = %v, want ErrNotFound", missing, err)
			}
		}
	})
}

func TestFindMethod(t *testing.T) {
	tests := []struct {
		name    string
		want    string // method name, or "" for an error
		wantErr string
	}{
		{name: "acme.Users/Get", want: "acme.Users/Get"},
		{name: "acme.Users.List", want: "acme.Users/List"},
		{name: "/gitaly.RefTransaction/VoteTransaction", want: "gitaly.RefTransaction/VoteTransaction"},
		{name: "acme.Users/Gett", wantErr: `service acme.Users has no method "Gett"; did you mean "acme.Users/Get"?`},
		{name: "acme.Users/Frobnicate", wantErr: `service acme.Users has no method "Frobnicate"; it has "acme.Users/Get", "acme.Users/Create", "acme.Users/Update", "acme.Users/Delete", "acme.Users/List", "acme.Users/Import", "acme.Users/Chat"`},
		{name: "acme.User/Get", wantErr: `method "acme.User/Get" not found; did you mean "acme.Users/Get"`},
		{name: "gitaly.RefTransactions/VoteTransaction", wantErr: `did you mean "gitaly.RefTransaction/VoteTransaction"?`},
		{name: "acme.User", wantErr: `"acme.User" is a message, not a method`},
	}
	eachSource(t, func(t *testing.T, src Source) {
		for _, tc := range tests {
			md, err := FindMethod(testContext(t), src, tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("FindMethod(%q) error = %v, want it to contain %q", tc.name, err, tc.wantErr)
				}
				if strings.HasSuffix(err.Error(), ": not found") {
					t.Errorf("FindMethod(%q) error = %v: it says \"not found\" twice", tc.name, err)
				}
				if strings.Contains(tc.wantErr, "not a method") != !errors.Is(err, ErrNotFound) {
					t.Errorf("FindMethod(%q) error = %v; errors.Is(err, ErrNotFound) = %v", tc.name, err, errors.Is(err, ErrNotFound))
				}
				continue
			}
			if err != nil {
				t.Errorf("FindMethod(%q): %v", tc.name, err)
				continue
			}
			if got := MethodName(md); got != tc.want {
				t.Errorf("FindMethod(%q) = %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestProtoFilesCompileErrorsListEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := `syntax = "proto3";
package bad;

message A {
  Missing one = 1;
  AlsoMissing two = 2;
}
`
	if err := os.WriteFile(filepath.Join(dir, "bad.proto"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: []string{dir}}, "bad.proto")
	var ce *CompileError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCompile) {
		t.Fatalf("error = %v, want a *CompileError wrapping ErrCompile", err)
	}
	want := []string{`bad.proto:5:3: field bad.A.one: unknown type Missing`, `bad.proto:6:3: field bad.A.two: unknown type AlsoMissing`}
	if !reflect.DeepEqual(ce.Problems, want) {
		t.Errorf("problems = %q, want %q", ce.Problems, want)
	}
	if ce.ImportRoot != "" {
		t.Errorf("import root = %q for files that import nothing missing", ce.ImportRoot)
	}

	_, err = NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: []string{dir}}, "absent.proto")
	if err == nil || !strings.Contains(err.Error(), "absent.proto") {
		t.Errorf("missing file: error = %v, want it to name absent.proto", err)
	}
	syntax := "syntax = \"proto3\";\nmessage B { int32 x = 1 }\n"
	if err := os.WriteFile(filepath.Join(dir, "syntax.proto"), []byte(syntax), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: []string{dir}}, "syntax.proto")
	if err == nil || !strings.Contains(err.Error(), "syntax.proto:2:") {
		t.Errorf("syntax error: error = %v, want syntax.proto:2:col", err)
	}
}

func TestProtosetErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.protoset")
	if err := os.WriteFile(garbage, []byte("not a protoset at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSourceFromProtosets(garbage); err == nil || !strings.Contains(err.Error(), "garbage.protoset") {
		t.Errorf("garbage: error = %v, want it to name the file", err)
	}
	if _, err := NewSourceFromProtosets(filepath.Join(dir, "absent.protoset")); err == nil || !strings.Contains(err.Error(), "absent.protoset") {
		t.Errorf("absent: error = %v, want it to name the file", err)
	}
	// A protoset without its imports names the missing import.
	full, err := NewSourceFromProtosets(corpusDir + "/corpus.protoset")
	if err != nil {
		t.Fatal(err)
	}
	set := full.FileDescriptorSet()
	var partial descriptorpb.FileDescriptorSet
	for _, f := range set.File {
		if f.GetName() != "gitaly/shared.proto" {
			partial.File = append(partial.File, f)
		}
	}
	_, err = NewSourceFromFileDescriptorSet(&partial)
	if err == nil || !strings.Contains(err.Error(), `imports "gitaly/shared.proto", which the protoset does not contain`) {
		t.Errorf("partial: error = %v", err)
	}
}

func TestReflectionNotSupported(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer() // no reflection service
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	src := NewSourceFromReflection(context.Background(), dial(t, lis.Addr().String()), nil)
	defer src.Close()
	_, err = src.ListServices(testContext(t))
	if !errors.Is(err, ErrReflectionNotSupported) || !strings.Contains(err.Error(), "server does not support the reflection API") {
		t.Errorf("ListServices error = %v, want ErrReflectionNotSupported", err)
	}
	_, err = src.FindSymbol(testContext(t), "acme.Users")
	if !errors.Is(err, ErrReflectionNotSupported) {
		t.Errorf("FindSymbol error = %v, want ErrReflectionNotSupported", err)
	}

	// A composite falls back to the files.
	comp := NewCompositeSource(src, filesSource(t))
	if _, err := FindMethod(testContext(t), comp, "acme.Users/Get"); err != nil {
		t.Errorf("composite FindMethod: %v", err)
	}
	names, err := comp.ListServices(testContext(t))
	if err != nil || len(names) != 6 {
		t.Errorf("composite ListServices = %v, %v; want the 6 file services", names, err)
	}
	if _, err := comp.FindSymbol(testContext(t), "acme.Nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("composite unknown symbol: error = %v, want ErrNotFound", err)
	}
}

func TestReflectionSendsHeaders(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		mu.Lock()
		seen = append(seen, info.FullMethod+" "+strings.Join(md.Get("authorization"), ","))
		mu.Unlock()
		return handler(srv, ss)
	})
	cc := dial(t, startServer(t, corpusResponder(), record))
	src := NewSourceFromReflection(context.Background(), cc, metadata.Pairs("authorization", "Bearer t0k3n"))
	defer src.Close()
	if _, err := src.ListServices(testContext(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo Bearer t0k3n"
	if len(seen) == 0 || seen[0] != want {
		t.Errorf("reflection calls = %q, want first %q", seen, want)
	}
}

func TestReflectionSourceContextEnds(t *testing.T) {
	src := reflectionSource(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.ListServices(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListServices with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestCompositePrefersFirstSource(t *testing.T) {
	files := filesSource(t)
	set := files.(*FileSource).FileDescriptorSet()
	// A second schema where acme.Users has only Get.
	other := &descriptorpb.FileDescriptorSet{}
	for _, f := range set.File {
		if f.GetName() == "acme/users.proto" {
			f.Service[0].Method = f.Service[0].Method[:1]
		}
		other.File = append(other.File, f)
	}
	trimmed, err := NewSourceFromFileDescriptorSet(other)
	if err != nil {
		t.Fatal(err)
	}
	comp := NewCompositeSource(trimmed, files)
	d, err := comp.FindSymbol(testContext(t), "acme.Users")
	if err != nil {
		t.Fatal(err)
	}
	if n := d.(protoreflect.ServiceDescriptor).Methods().Len(); n != 1 {
		t.Errorf("composite found acme.Users with %d methods, want the first source's 1", n)
	}
	if _, err := comp.Types().FindMessageByName("acme.User"); err != nil {
		t.Errorf("composite types: %v", err)
	}
}

func TestProtoFilesAcceptPathsUnderTheImportPath(t *testing.T) {
	src, err := NewSourceFromProtoFiles(testContext(t), ProtoFilesOptions{ImportPaths: []string{corpusDir}},
		corpusDir+"/gitaly/transaction.proto", "acme/users.proto")
	if err != nil {
		t.Fatal(err)
	}
	for _, sym := range []string{"gitaly.RefTransaction", "acme.Users"} {
		if _, err := src.FindSymbol(testContext(t), sym); err != nil {
			t.Error(err)
		}
	}
	if fd, _ := src.Registry().FindFileByPath("gitaly/transaction.proto"); fd == nil {
		t.Error("gitaly/transaction.proto not registered under its import-relative name")
	}
}

// A server that only has the older v1alpha reflection service is still
// understood.
func TestReflectionFallsBackToV1Alpha(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	services, err := Services(testContext(t), protosetSource(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := RegisterServices(srv, services, corpusResponder()); err != nil {
		t.Fatal(err)
	}
	files := protosetSource(t).(*FileSource).Registry()
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(reflection.ServerOptions{Services: srv, DescriptorResolver: files}))
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	src := NewSourceFromReflection(context.Background(), dial(t, lis.Addr().String()), nil)
	defer src.Close()
	names, err := src.ListServices(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []protoreflect.FullName{"acme.Users", "gitaly.OperationService", "gitaly.RefService", "gitaly.RefTransaction", "gitaly.SSHService", "gitaly.SmartHTTPService", "grpc.reflection.v1alpha.ServerReflection"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("services = %v, want %v", names, want)
	}
	if _, err := FindMethod(testContext(t), src, "gitaly.RefTransaction/VoteTransaction"); err != nil {
		t.Error(err)
	}
}
