package corpus_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/bcctl/bcctl/internal/corpus"
	"github.com/bcctl/bcctl/internal/dynamic"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProtosetIsUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := dynamic.CompileProtoset(testContext(t), os.DirFS("."), &buf); err != nil {
		t.Fatalf("CompileProtoset: %v", err)
	}
	committed, err := os.ReadFile("corpus.protoset")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), committed) {
		t.Fatalf("internal/corpus/corpus.protoset is stale (%d bytes committed, %d compiled): run `go generate ./internal/corpus`",
			len(committed), buf.Len())
	}
	if !bytes.Equal(corpus.Protoset, committed) {
		t.Fatal("corpus.Protoset differs from corpus.protoset")
	}
	var names []string
	entries, _ := filepath.Glob(filepath.Join("*", "*.proto"))
	for _, e := range entries {
		names = append(names, filepath.ToSlash(e))
	}
	if !reflect.DeepEqual(names, corpus.ProtoFiles) {
		t.Errorf("corpus.ProtoFiles = %v, files on disk = %v", corpus.ProtoFiles, names)
	}
}

func TestEmbeddedCorpusLoads(t *testing.T) {
	fromFS, err := dynamic.NewSourceFromProtoFiles(testContext(t), dynamic.ProtoFilesOptions{FS: corpus.FS}, corpus.ProtoFiles...)
	if err != nil {
		t.Fatalf("from corpus.FS: %v", err)
	}
	fromBytes, err := dynamic.NewSourceFromProtosetBytes(corpus.Protoset)
	if err != nil {
		t.Fatalf("from corpus.Protoset: %v", err)
	}
	for _, src := range []dynamic.Source{fromFS, fromBytes} {
		if _, err := dynamic.FindMethod(testContext(t), src, "gitaly.RefTransaction/VoteTransaction"); err != nil {
			t.Error(err)
		}
	}
}
