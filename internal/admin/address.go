package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/bcctl/bcctl/internal/serve"
)

// ErrNotLocal is wrapped by CheckAddress's error for an address other
// machines could reach.
var ErrNotLocal = errors.New("the admin API listens only on a loopback address or a unix socket")

// CheckAddress accepts an admin listen address only when no other machine
// can reach it: a unix socket ("unix:PATH"), or a loopback host
// ("127.0.0.1:PORT", "[::1]:PORT", "localhost:PORT" when localhost resolves
// only to loopback addresses). The admin API triggers calls into peers, so
// it must not be exposed like serve's main port.
func CheckAddress(ctx context.Context, addr string) error {
	network, address := serve.SplitAddress(addr)
	if network == "unix" {
		if address == "" {
			return fmt.Errorf("admin address %q: the socket path is missing", addr)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("admin address %q: want 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:PATH: %w", addr, err)
	}
	refuse := func(why string) error {
		return fmt.Errorf("admin address %q: %s; use 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:PATH: %w", addr, why, ErrNotLocal)
	}
	if host == "" {
		return refuse("an empty host listens on every network interface")
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return refuse(host + " listens on every network interface")
		}
		if !ip.IsLoopback() {
			return refuse(host + " is not a loopback address")
		}
		return nil
	}
	if !strings.EqualFold(host, "localhost") {
		return refuse(fmt.Sprintf("host %q is not a loopback address", host))
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("admin address %q: resolve %s: %w", addr, host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return refuse(fmt.Sprintf("localhost resolves to %s, which is not a loopback address", ip.IP))
		}
	}
	return nil
}
