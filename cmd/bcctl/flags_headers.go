package main

import (
	"os"
	"regexp"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/metadata"

	"github.com/bcctl/bcctl/internal/dynamic"
)

// HeaderFlags are the request metadata flags of grpcurl: -H for every
// request (the call and reflection), --rpc-header for the call only,
// --reflect-header for reflection only, and --expand-headers to read
// ${NAME} from the environment.
type HeaderFlags struct {
	Headers        []string
	RPCHeaders     []string
	ReflectHeaders []string
	Expand         bool
}

// AddFlags adds -H/--header, --rpc-header, --reflect-header and
// --expand-headers.
func (h *HeaderFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&h.Headers, "header", "H", nil, "request metadata as 'name: value', sent with calls and reflection requests (repeatable)")
	fs.StringArrayVar(&h.RPCHeaders, "rpc-header", nil, "request metadata 'name: value' for the call only, not reflection (repeatable)")
	fs.StringArrayVar(&h.ReflectHeaders, "reflect-header", nil, "request metadata 'name: value' for reflection requests only (repeatable)")
	fs.BoolVar(&h.Expand, "expand-headers", false, "replace ${NAME} in header values with the environment variable NAME")
}

// RPCMetadata returns the metadata of calls: -H and --rpc-header.
func (h *HeaderFlags) RPCMetadata(getenv func(string) string) (metadata.MD, error) {
	return h.metadata(getenv, h.Headers, h.RPCHeaders)
}

// ReflectMetadata returns the metadata of reflection requests: -H and
// --reflect-header.
func (h *HeaderFlags) ReflectMetadata(getenv func(string) string) (metadata.MD, error) {
	return h.metadata(getenv, h.Headers, h.ReflectHeaders)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func (h *HeaderFlags) metadata(getenv func(string) string, lists ...[]string) (metadata.MD, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	if h.Expand {
		for i, s := range all {
			var missing []string
			all[i] = envRef.ReplaceAllStringFunc(s, func(ref string) string {
				name := envRef.FindStringSubmatch(ref)[1]
				v := getenv(name)
				if v == "" {
					missing = append(missing, name)
				}
				return v
			})
			if len(missing) > 0 {
				return nil, usageErrorf("header %q: --expand-headers: environment variable %s is not set", s, missing[0])
			}
		}
	}
	md, err := dynamic.ParseHeaders(all)
	if err != nil {
		return nil, usageErrorf("%v", trimPkg(err))
	}
	return md, nil
}

// trimPkg drops the "dynamic: " prefix of library errors shown to users
// as usage errors.
func trimPkg(err error) string {
	s := err.Error()
	if len(s) > 9 && s[:9] == "dynamic: " {
		return s[9:]
	}
	return s
}
