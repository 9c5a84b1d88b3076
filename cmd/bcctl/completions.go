package main

import (
	"github.com/spf13/cobra"
)

// completeFlagValues teaches shell completion the values of the flags
// cmd has, among those that take a fixed set of values or files.
func completeFlagValues(cmd *cobra.Command) {
	fixed := map[string][]string{
		"format": {"json", "text"},
		"bytes":  {"base64", "text"},
	}
	if cmd.Name() == "connect" {
		fixed["output"] = []string{"auto", "text", "json"}
	} else {
		fixed["output"] = []string{"text", "json"}
	}
	for name, values := range fixed {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	files := map[string][]string{
		"answer":               {"yaml", "yml"},
		"proto":                {"proto"},
		"backchannel-proto":    {"proto"},
		"protoset":             {"protoset", "pb", "bin"},
		"backchannel-protoset": {"protoset", "pb", "bin"},
		"cacert":               {"pem", "crt"},
		"cert":                 {"pem", "crt"},
		"key":                  {"pem", "key"},
	}
	for name, exts := range files {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.MarkFlagFilename(name, exts...)
		}
	}
	for _, name := range []string{"import-path", "backchannel-import-path"} {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.MarkFlagDirname(name)
		}
	}
}
