package testnet

import (
	"errors"
	"io"
	"net"
	"testing"
)

func TestCrashClosesAcceptedConnections(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := NewCrashListener(lis)
	defer cl.Close()
	accepted := make(chan error, 1)
	go func() {
		_, err := cl.Accept()
		accepted <- err
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	cl.Crash()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read after Crash: %v, want EOF", err)
	}
}
