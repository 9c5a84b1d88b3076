package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// VersionOptions are the options of `bcctl version`.
type VersionOptions struct {
	IO *IOStreams
	// BuildInfo reads the build information (debug.ReadBuildInfo in a real
	// process).
	BuildInfo func() (*debug.BuildInfo, bool)
}

func newVersionCmd(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{IO: f.IOStreams, BuildInfo: debug.ReadBuildInfo}
	return &cobra.Command{
		Use:   "version",
		Short: "Print bcctl's version and the revision it was built from",
		Example: `  bcctl version
  bcctl --version`,
		Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
}

func versionRun(opts *VersionOptions) error {
	info, ok := opts.BuildInfo()
	_, err := fmt.Fprintf(opts.IO.Out, "%s\n%s %s/%s\n", describeBuild(info, ok), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// versionString is the one-line version for `bcctl --version`.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	return describeBuild(info, ok)
}

// describeBuild says which bcctl this is: the module version (a release
// tag, a pseudo-version, or "(devel)" for a build from a checkout), and the
// VCS revision and time when the build recorded them.
func describeBuild(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "bcctl (version unknown: built without module information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var extra []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		r := "revision " + rev
		if modified {
			r += " with local changes"
		}
		extra = append(extra, r)
	}
	if when != "" {
		extra = append(extra, when)
	}
	if len(extra) == 0 {
		return "bcctl " + version
	}
	return fmt.Sprintf("bcctl %s (%s)", version, strings.Join(extra, ", "))
}
