package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Address is where to connect or listen: a TCP host:port or a unix socket.
type Address struct {
	// Network is "tcp" or "unix".
	Network string
	// Addr is host:port, or the socket's path.
	Addr string
}

// String returns the address as a user writes it: host:port, or
// unix:PATH.
func (a Address) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Addr
	}
	return a.Addr
}

// IsUnix reports whether the address is a unix socket.
func (a Address) IsUnix() bool { return a.Network == "unix" }

// ParseAddress reads an address argument: host:port ("[::1]:9000" for IPv6,
// ":9000" for every local address when listening), or a unix socket as
// "unix:PATH", "unix://PATH" or, when unix is set (grpcurl's -unix), a bare
// path.
func ParseAddress(s string, unix bool) (Address, error) {
	switch {
	case s == "":
		return Address{}, fmt.Errorf("address is empty: want host:port or unix:PATH")
	case strings.HasPrefix(s, "unix://"):
		return unixAddress(strings.TrimPrefix(s, "unix://"), s)
	case strings.HasPrefix(s, "unix:"):
		return unixAddress(strings.TrimPrefix(s, "unix:"), s)
	case unix:
		return unixAddress(s, s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: want host:port (or unix:PATH, or a socket path with --unix): %v", s, addrErrText(err))
	}
	if port == "" {
		return Address{}, fmt.Errorf("address %q: the port is missing", s)
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(s, "[") {
		return Address{}, fmt.Errorf("address %q: write an IPv6 host in brackets, as [%s]:%s", s, host, port)
	}
	if err := checkPort(port); err != nil {
		return Address{}, fmt.Errorf("address %q: %w", s, err)
	}
	return Address{Network: "tcp", Addr: s}, nil
}

// checkPort accepts a port number (0 to 65535; 0 lets a listener choose)
// or the name of a TCP service ("https").
func checkPort(port string) error {
	if strings.Trim(port, "0123456789") == "" {
		if n, err := strconv.ParseUint(port, 10, 32); err != nil || n > 65535 {
			return fmt.Errorf("port %s is out of range: want 0 to 65535", port)
		}
		return nil
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is neither a number nor the name of a TCP service", port)
	}
	return nil
}

func unixAddress(path, orig string) (Address, error) {
	if path == "" {
		return Address{}, fmt.Errorf("address %q: the socket path is missing", orig)
	}
	return Address{Network: "unix", Addr: path}, nil
}

func addrErrText(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

// Listen listens on the address. A unix socket file left by an earlier run
// that nobody listens on any more is removed first.
func (a Address) Listen() (net.Listener, error) {
	if a.IsUnix() {
		if fi, err := os.Stat(a.Addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.Dial("unix", a.Addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen on %s: another process is listening there", a)
			}
			_ = os.Remove(a.Addr)
		}
	}
	lis, err := net.Listen(a.Network, a.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a, err)
	}
	return lis, nil
}
