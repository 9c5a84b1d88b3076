// Command protogen generates from .proto files without protoc, with
// protocompile (through internal/dynamic) and the protoc plugins pinned in
// go.mod (see internal/protogen). It has two modes, one per go:generate
// line of the repository:
//
//	protogen -I ROOT -protoset FILE
//	    compile every .proto file under ROOT into a deterministic protoset
//	    with source info and all imports (internal/corpus/corpus.protoset)
//	protogen -I ROOT -module IMPORTPATH -o DIR FILE.proto...
//	    run protoc-gen-go and protoc-gen-go-grpc on the files, writing the
//	    code of package IMPORTPATH into DIR (internal/admin/adminpb)
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/protogen"
)

func main() {
	root := flag.String("I", ".", "directory the .proto files (and their imports) are relative to")
	protoset := flag.String("protoset", "", "write a protoset of every .proto file under the root to `FILE`")
	module := flag.String("module", "", "Go import path of the output directory (the files' go_package)")
	out := flag.String("o", ".", "directory to write the generated Go files to")
	flag.Parse()
	var err error
	switch {
	case *protoset != "" && flag.NArg() == 0:
		err = writeProtoset(*root, *protoset)
	case *protoset == "" && *module != "" && flag.NArg() > 0:
		var files map[string][]byte
		files, err = protogen.Generate(context.Background(), os.DirFS(*root), flag.Args(), protogen.GoPlugins(*module), ".")
		if err == nil {
			err = protogen.Write(*out, files)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: protogen -I ROOT -protoset FILE\n       protogen -I ROOT -module IMPORTPATH -o DIR FILE.proto...")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func writeProtoset(root, out string) error {
	var buf bytes.Buffer
	if err := dynamic.CompileProtoset(context.Background(), os.DirFS(root), &buf); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
