package main

import (
	"fmt"

	"github.com/bcctl/bcctl/internal/words"
)

// Bounds of --mux-window: yamux refuses windows below 256 KiB, and a
// window is memory each lagging stream may hold.
const (
	minMuxWindow = 256 << 10
	maxMuxWindow = 1 << 30
)

// muxWindowValue is the --mux-window flag: a size (words.ParseBytes)
// from 256KiB to 1GiB.
type muxWindowValue struct{ w *uint32 }

func (v muxWindowValue) String() string {
	if v.w == nil || *v.w == 0 {
		return ""
	}
	return words.Bytes(int64(*v.w))
}

func (v muxWindowValue) Set(s string) error {
	n, err := words.ParseBytes(s)
	if err != nil {
		return err
	}
	if n < minMuxWindow || n > maxMuxWindow {
		return fmt.Errorf("%s is outside 256KiB to 1GiB", s)
	}
	*v.w = uint32(n)
	return nil
}

func (v muxWindowValue) Type() string { return "size" }

// muxWindowUsage is the help of --mux-window; def names the default.
func muxWindowUsage(def string) string {
	return "yamux stream `window` this side advertises, like 16MiB (default " + def + "); larger speeds bulk transfers such as sidechannels and costs that much memory per lagging stream (docs/sidechannel.md)"
}
