package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"

	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/script"
)

// Exit codes of bcctl; docs/exit-codes.md explains each one.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitError: a runtime error (cannot connect, a bad request message, a
	// script or schema that does not load, a journal that cannot be written).
	ExitError = 1
	// ExitUsage: bad flags or arguments; nothing was attempted.
	ExitUsage = 2
	// ExitExpectations: the calls went through, but the script's `expect`
	// entries were not met.
	ExitExpectations = 3
	// ExitStatusBase plus the gRPC code is the exit code when the forward
	// call ends with a non-OK status (grpcurl's convention): 64+5=69 for
	// NOT_FOUND, 64+14=78 for UNAVAILABLE.
	ExitStatusBase = 64
	// ExitInterrupted: stopped by SIGINT or SIGTERM before the command was
	// done (commands that run until interrupted, like connect, exit with
	// their own result instead).
	ExitInterrupted = 130
)

// usageError is a mistake on the command line: a missing argument, an
// unknown flag, flags that do not go together. It exits with ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error; the command's run function uses it
// for checks cobra cannot make (flags that exclude each other, say).
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errNoTUI refuses --tui when the Factory has no terminal UI.
var errNoTUI = &usageError{err: errors.New("--tui: this bcctl has no terminal UI")}

// StatusError reports that an RPC ended with a non-OK status that the
// command has already printed (or formatted with --format-error). It exits
// with ExitStatusBase+code and prints nothing more.
type StatusError struct {
	Code codes.Code
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("rpc ended with status %s", calls.CodeName(e.Code))
}

// silentError carries an exit code for an outcome the command has already
// reported in full.
type silentError struct {
	code int
	err  error
}

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

// exitCodeOf maps an error returned by a command to the process's exit
// code. This is the one place where that happens.
func exitCodeOf(err error) int {
	var usage *usageError
	var st *StatusError
	var silent *silentError
	var maxTime *maxTimeError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &silent):
		return silent.code
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &st):
		if st.Code == codes.OK {
			return ExitOK
		}
		return ExitStatusBase + int(st.Code)
	case errors.As(err, &maxTime):
		return ExitStatusBase + int(codes.DeadlineExceeded)
	case errors.Is(err, script.ErrExpectationsFailed):
		return ExitExpectations
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	default:
		return ExitError
	}
}

// errInterrupted is the cause of the command context's cancellation when
// SIGINT or SIGTERM arrives.
var errInterrupted = errors.New("interrupted")

// interrupted reports whether ctx ended because of SIGINT or SIGTERM.
func interrupted(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errInterrupted)
}

// reportError prints err for the user, as the exit code's message: usage
// errors point to --help; expectation reports are printed as they are;
// silent errors print nothing.
func reportError(w io.Writer, err error, cmdPath string) {
	var usage *usageError
	var st *StatusError
	var silent *silentError
	switch {
	case err == nil, errors.As(err, &silent), errors.As(err, &st):
	case errors.As(err, &usage):
		fmt.Fprintf(w, "bcctl: %v\n", err)
		if cmdPath != "" {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmdPath)
		}
	case errors.Is(err, script.ErrExpectationsFailed):
		fmt.Fprintf(w, "%v\n", err)
	default:
		fmt.Fprintf(w, "bcctl: %v\n", err)
	}
}
