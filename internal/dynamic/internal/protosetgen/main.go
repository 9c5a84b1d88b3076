// Command protosetgen compiles every .proto file under a directory with
// protocompile (no protoc needed) and writes a protoset: a deterministic,
// serialized google.protobuf.FileDescriptorSet with source info and all
// imports. It generates internal/corpus/corpus.protoset:
//
//	go generate ./internal/corpus
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bcctl/bcctl/internal/dynamic"
)

func main() {
	root := flag.String("root", ".", "directory the .proto files (and their imports) are relative to")
	out := flag.String("o", "corpus.protoset", "protoset file to write")
	flag.Parse()
	if err := run(*root, *out); err != nil {
		fmt.Fprintln(os.Stderr, "protosetgen:", err)
		os.Exit(1)
	}
}

func run(root, out string) error {
	var buf bytes.Buffer
	if err := dynamic.CompileProtoset(context.Background(), os.DirFS(root), &buf); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
