package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in      string
		unix    bool
		want    Address
		wantErr string
	}{
		{in: "localhost:9000", want: Address{"tcp", "localhost:9000"}},
		{in: "[::1]:9000", want: Address{"tcp", "[::1]:9000"}},
		{in: ":9000", want: Address{"tcp", ":9000"}},
		{in: "unix:/run/g.sock", want: Address{"unix", "/run/g.sock"}},
		{in: "unix:///run/g.sock", want: Address{"unix", "/run/g.sock"}},
		{in: "rel.sock", unix: true, want: Address{"unix", "rel.sock"}},
		{in: "localhost", wantErr: `address "localhost": want host:port (or unix:PATH, or a socket path with --unix): missing port in address`},
		{in: "localhost:", wantErr: "the port is missing"},
		{in: "localhost:65535", want: Address{"tcp", "localhost:65535"}},
		{in: "127.0.0.1:0", want: Address{"tcp", "127.0.0.1:0"}},
		{in: "localhost:https", want: Address{"tcp", "localhost:https"}},
		{in: "127.0.0.1:99999", wantErr: `address "127.0.0.1:99999": port 99999 is out of range: want 0 to 65535`},
		{in: "127.0.0.1:99999999999999999999", wantErr: "is out of range"},
		{in: "localhost:nosuchservice", wantErr: `port "nosuchservice" is neither a number nor the name of a TCP service`},
		{in: "unix:", wantErr: "the socket path is missing"},
		{in: "", wantErr: "address is empty"},
	} {
		got, err := ParseAddress(tc.in, tc.unix)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAddress(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"10", 10 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"250ms", 250 * time.Millisecond, false},
		{"1m", time.Minute, false},
		{"-1", 0, true},
		{"soon", 0, true},
	} {
		got, err := parseSeconds(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseSeconds(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestTLSFlagsClientCredentials(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   TLSFlags
		wantErr string
		wantSec string
	}{
		{"plaintext", TLSFlags{Plaintext: true}, "", "insecure"},
		{"tls by default", TLSFlags{}, "", "tls"},
		{"insecure", TLSFlags{Insecure: true}, "", "tls"},
		{"plaintext+insecure", TLSFlags{Plaintext: true, Insecure: true}, "--insecure does not go with --plaintext", ""},
		{"plaintext+cert", TLSFlags{Plaintext: true, Cert: "c"}, "--cert does not go with --plaintext", ""},
		{"cert without key", TLSFlags{Cert: "c"}, "--cert and --key go together", ""},
		{"authority and servername differ", TLSFlags{Authority: "a", ServerName: "b"}, `--authority "a" and --servername "b" differ`, ""},
		{"missing cacert", TLSFlags{CACert: "/nonexistent/ca.pem"}, "--cacert: open /nonexistent/ca.pem", ""},
	} {
		creds, err := tc.flags.ClientCredentials()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := creds.Info().SecurityProtocol; got != tc.wantSec {
			t.Errorf("%s: security protocol %q, want %q", tc.name, got, tc.wantSec)
		}
	}
	// Contradictions are usage errors (exit 2); a missing file is not.
	_, err := (&TLSFlags{Plaintext: true, Key: "k"}).ClientCredentials()
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Errorf("--plaintext --key: %v is not a usage error", err)
	}
}

func TestTLSFlagsServerCredentials(t *testing.T) {
	dir := t.TempDir()
	if err := writeTestCerts(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		flags   TLSFlags
		wantErr string
		wantSec string
	}{
		{"plaintext", TLSFlags{}, "", "insecure"},
		{"tls", TLSFlags{Cert: dir + "/server.pem", Key: dir + "/server-key.pem"}, "", "tls"},
		{"mtls", TLSFlags{Cert: dir + "/server.pem", Key: dir + "/server-key.pem", CACert: dir + "/ca.pem"}, "", "tls"},
		{"cacert alone", TLSFlags{CACert: dir + "/ca.pem"}, "--cacert (verify client certificates) needs TLS", ""},
		{"key alone", TLSFlags{Key: "k"}, "--cert and --key go together", ""},
		{"bad pair", TLSFlags{Cert: dir + "/server.pem", Key: dir + "/client-key.pem"}, "private key does not match public key", ""},
	} {
		creds, err := tc.flags.ServerCredentials()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := creds.Info().SecurityProtocol; got != tc.wantSec {
			t.Errorf("%s: security protocol %q, want %q", tc.name, got, tc.wantSec)
		}
	}
}

func TestHeaderFlags(t *testing.T) {
	h := HeaderFlags{
		Headers:        []string{"X-Both: 1"},
		RPCHeaders:     []string{"x-rpc: ${TOKEN}"},
		ReflectHeaders: []string{"x-reflect: r"},
		Expand:         true,
	}
	env := func(k string) string {
		if k == "TOKEN" {
			return "secret"
		}
		return ""
	}
	rpc, err := h.RPCMetadata(env)
	if err != nil {
		t.Fatal(err)
	}
	if rpc.Get("x-both")[0] != "1" || rpc.Get("x-rpc")[0] != "secret" || len(rpc.Get("x-reflect")) != 0 {
		t.Errorf("rpc metadata = %v", rpc)
	}
	refl, err := h.ReflectMetadata(env)
	if err != nil {
		t.Fatal(err)
	}
	if refl.Get("x-reflect")[0] != "r" || len(refl.Get("x-rpc")) != 0 {
		t.Errorf("reflect metadata = %v", refl)
	}
	h.RPCHeaders = []string{"x-rpc: ${MISSING}"}
	if _, err := h.RPCMetadata(env); err == nil || !strings.Contains(err.Error(), "environment variable MISSING is not set") {
		t.Errorf("missing variable: %v", err)
	}
}

func TestSchemaFlagsReflectionDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--protoset", "x.pb"}, false},
		{[]string{"--proto", "x.proto", "--use-reflection"}, true},
		{[]string{"--use-reflection=false", "--protoset", "x"}, false},
	} {
		var s SchemaFlags
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		s.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := s.Reflection(); got != tc.want {
			t.Errorf("%v: Reflection() = %v, want %v", tc.args, got, tc.want)
		}
	}
	var s SchemaFlags
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	s.AddFlags(fs)
	_ = fs.Parse([]string{"--use-reflection=false"})
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--use-reflection=false needs a schema") {
		t.Errorf("Validate() = %v", err)
	}
}
