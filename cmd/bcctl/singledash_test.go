package main

import (
	"reflect"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestGrpcurlFlags(t *testing.T) {
	root := newRootCmd(testRootFactory())
	tests := []struct {
		in, want []string
	}{
		{[]string{"call", "-plaintext", "localhost:9000", "acme.Users/Get"}, []string{"call", "--plaintext", "localhost:9000", "acme.Users/Get"}},
		{[]string{"call", "-max-time", "5", "-import-path=protos", "a:1", "m"}, []string{"call", "--max-time", "5", "--import-path=protos", "a:1", "m"}},
		// A value of a flag that takes one stays that value.
		{[]string{"call", "-d", "-plaintext", "a:1", "m"}, []string{"call", "-d", "-plaintext", "a:1", "m"}},
		{[]string{"call", "--data", "-plaintext", "a:1", "m"}, []string{"call", "--data", "-plaintext", "a:1", "m"}},
		{[]string{"call", "-H", "-insecure: x", "-insecure", "a:1", "m"}, []string{"call", "-H", "-insecure: x", "--insecure", "a:1", "m"}},
		// Shorthand groups stay groups.
		{[]string{"call", "-vv", "-d@req.json", "a:1", "m"}, []string{"call", "-vv", "-d@req.json", "a:1", "m"}},
		{[]string{"call", "-vd", "-plaintext", "a:1", "m"}, []string{"call", "-vd", "-plaintext", "a:1", "m"}},
		// Not a flag of the command, and after "--": left alone.
		{[]string{"call", "-nosuch", "a:1", "m"}, []string{"call", "-nosuch", "a:1", "m"}},
		{[]string{"call", "a:1", "m", "--", "-plaintext"}, []string{"call", "a:1", "m", "--", "-plaintext"}},
		// Each command's own flags.
		{[]string{"list", "-plaintext", "-long", "a:1"}, []string{"list", "--plaintext", "--long", "a:1"}},
		{[]string{"peers", "journal", "-follow", "-dir", "reverse", "a:1"}, []string{"peers", "journal", "--follow", "--dir", "reverse", "a:1"}},
	}
	for _, tt := range tests {
		if got := grpcurlFlags(root, tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("grpcurlFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestNoLongFlagReadsAsShorthands: a single-dash word that names a long
// flag is read as that flag, so no long flag may also be a group of the
// command's shorthands (which pflag would read otherwise).
func TestNoLongFlagReadsAsShorthands(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		check := func(f *pflag.Flag) {
			if len(f.Name) < 2 {
				return
			}
			for i := 0; i < len(f.Name); i++ {
				if lookupShorthand(cmd, f.Name[i:i+1]) == nil {
					return
				}
			}
			t.Errorf("%s: --%s is also a group of shorthands (-%s)", cmd.CommandPath(), f.Name, f.Name)
		}
		cmd.Flags().VisitAll(check)
		cmd.InheritedFlags().VisitAll(check)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(testRootFactory()))
}

func testRootFactory() *Factory {
	streams, _, _, _ := TestIO()
	return TestFactory(streams)
}
