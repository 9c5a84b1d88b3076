package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bcctl/bcctl/internal/words"
)

// grpcurlFlags rewrites grpcurl's single-dash long flags (-plaintext,
// -max-time 5, -import-path=protos) to bcctl's double-dash ones, for the
// command that args run, so that a grpcurl command line works as typed. A
// single-dash word is rewritten only when it names a long flag of that
// command; shorthand groups (-vv, -d@file) and flag values stay as they
// are, and nothing after "--" is touched.
func grpcurlFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch {
		case a == "--":
			return out
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			if f := lookupFlag(cmd, name); f != nil && !hasValue && takesValue(f) {
				i++ // the next word is its value
			}
		case len(a) > 2 && a[0] == '-':
			name, _, hasValue := strings.Cut(a[1:], "=")
			if f := lookupFlag(cmd, name); f != nil && len(name) > 1 {
				out[i] = "-" + a
				if !hasValue && takesValue(f) {
					i++
				}
				continue
			}
			if shorthandsWantNext(cmd, a[1:]) {
				i++
			}
		case len(a) == 2 && a[0] == '-':
			if shorthandsWantNext(cmd, a[1:]) {
				i++
			}
		}
	}
	return out
}

// shorthandsWantNext reports whether the shorthand group g (without its
// dash) takes the next word as a value, as pflag reads it: the first
// shorthand that takes a value takes the rest of the group, or the next
// word when it is the group's last.
func shorthandsWantNext(cmd *cobra.Command, g string) bool {
	for i := 0; i < len(g); i++ {
		f := lookupShorthand(cmd, g[i:i+1])
		if f == nil {
			return false
		}
		if takesValue(f) {
			return i == len(g)-1
		}
	}
	return false
}

func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

func lookupShorthand(cmd *cobra.Command, s string) *pflag.Flag {
	if f := cmd.Flags().ShorthandLookup(s); f != nil {
		return f
	}
	return cmd.InheritedFlags().ShorthandLookup(s)
}

// takesValue reports whether f needs a value (not a bool or count flag).
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// flagError makes a flag that cobra could not parse a usage error, and
// suggests the flag that was probably meant.
func flagError(cmd *cobra.Command, err error) error {
	var missing *pflag.NotExistError
	if errors.As(err, &missing) {
		if hint := suggestFlag(cmd, missing); hint != "" {
			err = fmt.Errorf("%w%s", err, hint)
		}
	}
	return &usageError{err: err}
}

// suggestFlag returns "; did you mean --NAME?" for an unknown flag, or "".
func suggestFlag(cmd *cobra.Command, e *pflag.NotExistError) string {
	typed := e.GetSpecifiedName()
	if group := e.GetSpecifiedShortnames(); group != "" {
		typed, _, _ = strings.Cut(group, "=")
		if len(typed) < 2 {
			return ""
		}
	}
	var names []string
	add := func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	}
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	near := words.Closest(typed, names, 2)
	if len(near) == 0 {
		return ""
	}
	for i, n := range near {
		near[i] = "--" + n
	}
	return "; did you mean " + strings.Join(near, " or ") + "?"
}
