package serve

import (
	"fmt"
	"net"
	"strings"
)

// SplitAddress tells the network of a listen or dial address: "unix" for
// "unix:PATH" and "unix://PATH" (gRPC's spelling), "tcp" for "host:port".
func SplitAddress(addr string) (network, address string) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return "unix", strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	}
	return "tcp", addr
}

// Listen opens a listener on addr: "host:port" for TCP, "unix:PATH" for a
// unix socket.
func Listen(addr string) (net.Listener, error) {
	network, address := SplitAddress(addr)
	if address == "" {
		return nil, fmt.Errorf("serve: listen: empty address in %q", addr)
	}
	lis, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("serve: listen on %s: %w", addr, err)
	}
	return lis, nil
}

// ListenURL is how clients reach lis: "host:port", or "unix:PATH".
func ListenURL(lis net.Listener) string {
	a := lis.Addr()
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
}
