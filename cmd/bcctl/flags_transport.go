package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSFlags are the transport security flags, named as grpcurl names them.
// Clients (call, list, describe, connect, peers) use TLS unless --plaintext,
// like grpcurl; servers (serve) use TLS when given --cert and --key, and
// require client certificates signed by --cacert when it is given (mTLS).
type TLSFlags struct {
	Plaintext  bool
	Insecure   bool
	CACert     string
	Cert       string
	Key        string
	Authority  string
	ServerName string

	// files is the prefix of the certificate flags' names ("upstream-"
	// for bcctl proxy's way to its upstream), for messages.
	files string
}

// AddClientFlags adds the client's flags to fs.
func (t *TLSFlags) AddClientFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&t.Plaintext, "plaintext", false, "use plain-text HTTP/2 (no TLS)")
	fs.BoolVar(&t.Insecure, "insecure", false, "skip verification of the server's certificate and name (NOT SECURE)")
	fs.StringVar(&t.CACert, "cacert", "", "`file` of PEM root certificates to verify the server with (default: the system's)")
	fs.StringVar(&t.Cert, "cert", "", "`file` of the PEM client certificate to present (mTLS; needs --key)")
	fs.StringVar(&t.Key, "key", "", "`file` of the PEM private key of --cert")
	fs.StringVar(&t.Authority, "authority", "", "`name` sent as :authority, and the server name TLS verifies (default: the address)")
	fs.StringVar(&t.ServerName, "servername", "", "server `name` to verify the TLS certificate against (prefer --authority)")
}

// AddUpstreamFlags adds the flags of bcctl proxy's connections to its
// upstream: the client's flags, with the certificate files named
// --upstream-cacert, --upstream-cert and --upstream-key (--cacert, --cert
// and --key are the listening side's, as in serve).
func (t *TLSFlags) AddUpstreamFlags(fs *pflag.FlagSet) {
	t.files = "upstream-"
	fs.BoolVar(&t.Plaintext, "plaintext", false, "connect to the upstream in plain-text HTTP/2 (no TLS)")
	fs.BoolVar(&t.Insecure, "insecure", false, "skip verification of the upstream's certificate and name (NOT SECURE)")
	fs.StringVar(&t.CACert, "upstream-cacert", "", "`file` of PEM root certificates to verify the upstream with (default: the system's)")
	fs.StringVar(&t.Cert, "upstream-cert", "", "`file` of the PEM client certificate to present to the upstream (mTLS; needs --upstream-key)")
	fs.StringVar(&t.Key, "upstream-key", "", "`file` of the PEM private key of --upstream-cert")
	fs.StringVar(&t.Authority, "authority", "", "`name` sent to the upstream as :authority, and the server name TLS verifies (default: the address)")
	fs.StringVar(&t.ServerName, "servername", "", "server `name` to verify the upstream's TLS certificate against (prefer --authority)")
}

// flag names one of the certificate flags as given on the command line.
func (t *TLSFlags) flag(name string) string { return "--" + t.files + name }

// AddServerFlags adds a server's flags to fs.
func (t *TLSFlags) AddServerFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.Cert, "cert", "", "`file` of the server's PEM certificate: serve TLS (needs --key)")
	fs.StringVar(&t.Key, "key", "", "`file` of the PEM private key of --cert")
	fs.StringVar(&t.CACert, "cacert", "", "`file` of PEM CA certificates: require client certificates signed by them (mTLS)")
}

// ClientCredentials returns the transport credentials of a client. Flags
// that contradict each other are usage errors.
func (t *TLSFlags) ClientCredentials() (credentials.TransportCredentials, error) {
	cfg, err := t.ClientTLS()
	switch {
	case err != nil:
		return nil, err
	case cfg == nil:
		return insecure.NewCredentials(), nil
	}
	return credentials.NewTLS(cfg), nil
}

// ClientTLS returns the TLS configuration of a client; nil with
// --plaintext. Flags that contradict each other are usage errors.
func (t *TLSFlags) ClientTLS() (*tls.Config, error) {
	if t.Plaintext {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--insecure", t.Insecure}, {t.flag("cacert"), t.CACert != ""}, {t.flag("cert"), t.Cert != ""}, {t.flag("key"), t.Key != ""}, {"--servername", t.ServerName != ""}} {
			if f.set {
				return nil, usageErrorf("%s does not go with --plaintext (plain text has no TLS to configure)", f.name)
			}
		}
		return nil, nil
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, usageErrorf("%s and %s go together: give both or neither", t.flag("cert"), t.flag("key"))
	}
	if t.Authority != "" && t.ServerName != "" && t.Authority != t.ServerName {
		return nil, usageErrorf("--authority %q and --servername %q differ: give one of them", t.Authority, t.ServerName)
	}
	cfg := &tls.Config{InsecureSkipVerify: t.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // --insecure asks for it
	if t.CACert != "" {
		pool, err := loadCertPool(t.CACert, t.flag("cacert"))
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("%s %s / %s %s: %w", t.flag("cert"), t.Cert, t.flag("key"), t.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	switch {
	case t.ServerName != "":
		cfg.ServerName = t.ServerName
	case t.Authority != "":
		cfg.ServerName = hostOnly(t.Authority)
	}
	return cfg, nil
}

// ServerCredentials returns the transport credentials of a server:
// insecure without --cert, TLS with it, mTLS with --cacert as well.
func (t *TLSFlags) ServerCredentials() (credentials.TransportCredentials, error) {
	if (t.Cert == "") != (t.Key == "") {
		return nil, usageErrorf("--cert and --key go together: give both or neither")
	}
	if t.Cert == "" {
		if t.CACert != "" {
			return nil, usageErrorf("--cacert (verify client certificates) needs TLS: give --cert and --key too")
		}
		return insecure.NewCredentials(), nil
	}
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("--cert %s / --key %s: %w", t.Cert, t.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if t.CACert != "" {
		pool, err := loadCertPool(t.CACert, "--cacert")
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// IsTLS reports whether a client made with these flags uses TLS.
func (t *TLSFlags) IsTLS() bool { return !t.Plaintext }

func loadCertPool(path, flag string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate found in the file", flag, path)
	}
	return pool, nil
}

// hostOnly strips a port from an authority for TLS name verification.
func hostOnly(authority string) string {
	if h, _, err := net.SplitHostPort(authority); err == nil {
		return h
	}
	return authority
}
