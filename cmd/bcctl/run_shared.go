package main

import (
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/bcctl/bcctl/internal/admin"
	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
	"github.com/bcctl/bcctl/internal/serve"
)

// What bcctl serve and bcctl proxy, which both run under serve.Run, do
// alike.

// runStopText says why a serve.Run stopped, for the last line printed.
func runStopText(st *serve.Stopped, maxTime time.Duration) string {
	switch st.Reason {
	case serve.StopMaxTime:
		return fmt.Sprintf("--max-time %s passed", maxTime)
	case serve.StopListenerFailed:
		return "a listener failed"
	case serve.StopForeground:
		return "the terminal UI was closed"
	}
	return st.Detail // the signal ("interrupted"), or the Service's own reason
}

// runAdmin is the admin API on --admin's address, for backend.
func runAdmin(addr *Address, backend admin.Backend, opts admin.Options) *serve.AdminConfig {
	return &serve.AdminConfig{
		Listen: func() (net.Listener, error) {
			lis, err := addr.Listen()
			if err != nil {
				return nil, fmt.Errorf("--admin: %w", err)
			}
			return lis, nil
		},
		New: func(l serve.Listening) (*grpc.Server, error) {
			opts.Listen = l.Listen
			return admin.NewServer(backend, opts)
		},
	}
}

// journalSink writes each event of a hub to the --journal file, which
// must be a buffered journal.Writer: the hub flushes it after each batch.
func journalSink(jw *journal.Writer) serve.JournalSink { return serve.JournalWriter(jw) }

// checkExpectations returns the script's expectations' error when they
// failed; with -v it prints the report when they held.
func checkExpectations(report *script.Report, verbosity int, stderr io.Writer) error {
	if len(report.Results) == 0 {
		return nil
	}
	if err := report.Err(); err != nil {
		return err
	}
	if verbosity > 0 {
		fmt.Fprintln(stderr, report.String())
	}
	return nil
}
