package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/script"
)

func TestExitCodeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"runtime", errors.New("boom"), ExitError},
		{"usage", usageErrorf("bad flag"), ExitUsage},
		{"wrapped usage", fmt.Errorf("x: %w", usageErrorf("bad")), ExitUsage},
		{"status NOT_FOUND", &StatusError{Code: codes.NotFound}, 64 + 5},
		{"status UNAVAILABLE", &StatusError{Code: codes.Unavailable}, 78},
		{"status OK", &StatusError{Code: codes.OK}, ExitOK},
		{"expectations", fmt.Errorf("check: %w", script.ErrExpectationsFailed), ExitExpectations},
		{"interrupted", errInterrupted, ExitInterrupted},
		{"silent", &silentError{code: 7, err: errors.New("x")}, 7},
	} {
		if got := exitCodeOf(tc.err); got != tc.want {
			t.Errorf("%s: exitCodeOf(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestRunMapsCobraErrorsToUsage(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"nosuch"}, ExitUsage, `unknown command "nosuch"`},
		{[]string{"version", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{[]string{"version", "x"}, ExitUsage, "Run 'bcctl version --help' for usage."},
		{[]string{"completion"}, ExitUsage, "missing the shell"},
		{[]string{"version"}, ExitOK, ""},
	} {
		io, _, _, errOut := TestIO()
		code := Run(context.Background(), tc.args, TestFactory(io))
		if code != tc.wantCode {
			t.Errorf("bcctl %v: exit %d, want %d (stderr %q)", tc.args, code, tc.wantCode, errOut)
		}
		if !strings.Contains(errOut.String(), tc.wantStderr) {
			t.Errorf("bcctl %v: stderr %q, want it to contain %q", tc.args, errOut, tc.wantStderr)
		}
	}
}

func TestDescribeBuild(t *testing.T) {
	for _, tc := range []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{nil, false, "bcctl (version unknown: built without module information)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "bcctl (devel)"},
		{&debug.BuildInfo{Main: debug.Module{Version: ""}}, true, "bcctl (devel)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-24T02:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true, "bcctl v1.2.3 (revision 0123456789ab with local changes, 2026-11-24T02:00:00Z)"},
	} {
		if got := describeBuild(tc.info, tc.ok); got != tc.want {
			t.Errorf("describeBuild = %q, want %q", got, tc.want)
		}
	}
}

func TestColorWanted(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		tty  bool
		env  func(string) string
		want bool
	}{
		{true, env(), true},
		{false, env(), false},
		{true, env("NO_COLOR", "1"), false},
		{true, env("TERM", "dumb"), false},
		{false, env("CLICOLOR_FORCE", "1"), true},
		{false, env("CLICOLOR_FORCE", "1", "NO_COLOR", "1"), false},
	} {
		if got := colorWanted(tc.tty, tc.env); got != tc.want {
			t.Errorf("colorWanted(tty=%v) = %v, want %v", tc.tty, got, tc.want)
		}
	}
}
