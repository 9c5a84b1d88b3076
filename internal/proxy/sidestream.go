package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// http2Head is what an HTTP/2 (gRPC) connection sends first: the start of
// the connection preface.
const http2Head = "PRI * HTTP/"

// sidechannelMagic starts a Gitaly sidechannel stream; the 8 bytes after
// it are the sidechannel ID, big-endian.
const sidechannelMagic = "sidechannel"

// sideStreamBuffer is the copy buffer of each direction of a side stream:
// all the proxy holds of one.
const sideStreamBuffer = 32 << 10

// SideStream is one stream the upstream opened on a multiplexed connection
// that is not gRPC (Gitaly's sidechannel, or anything else), piped byte for
// byte to a stream the proxy opened to the client. It is handed to the
// Observer when both ways have closed, and not modified after.
type SideStream struct {
	// ID numbers the proxy's calls and side streams from 1.
	ID uint64
	// Cause is the ID of the forward call the stream belongs to: the
	// forward call in flight whose gitaly-sidechannel-id matches the
	// stream's, or else the one in flight that started last; 0 when none
	// was in flight.
	Cause uint64
	// Conn is the client connection the stream belongs to.
	Conn *Conn
	// Kind is "sidechannel" for Gitaly's sidechannel, otherwise the
	// stream's first bytes, quoted.
	Kind string
	// ChannelID is the sidechannel ID the stream carries, when
	// HasChannelID.
	ChannelID    int64
	HasChannelID bool
	// ToClient and ToUpstream count the bytes piped each way.
	ToClient, ToUpstream int64
	// ClosedFirst is the side that closed its end first (SideProxy when
	// the proxy could not open the client's stream, or stopped).
	ClosedFirst Side
	// Err says why the stream could not be piped, when it could not.
	Err error
	// Start is when the upstream opened the stream; End when both ways
	// had closed.
	Start, End time.Time
}

// Duration is how long the stream was open.
func (s *SideStream) Duration() time.Duration { return s.End.Sub(s.Start) }

// routeUpstreamStream is the reverse server's listenmux Fallback: a stream
// the upstream opened that begins like HTTP/2 carries reverse calls; any
// other is taken out of gRPC and piped to the client.
func (p *Proxy) routeUpstreamStream(conn net.Conn, head []byte, info credentials.AuthInfo) (net.Conn, credentials.AuthInfo, error) {
	if string(head) == http2Head {
		return conn, info, nil
	}
	li, ok := info.(linkInfo)
	if !ok {
		return nil, nil, errUntagged
	}
	if !li.l.pipes.begin() {
		return nil, nil, errors.New("proxy: side stream on a closing connection")
	}
	go p.pipeSideStream(li.l, conn, kindOf(head))
	return nil, nil, credentials.ErrConnDispatched
}

// kindOf names a side stream by its first bytes.
func kindOf(head []byte) string {
	if string(head) == sidechannelMagic {
		return sidechannelMagic
	}
	return strconv.Quote(string(head))
}

// pipeSideStream opens a stream to the link's client and copies bytes
// between it and up until both are closed. up replays the bytes already
// read.
func (p *Proxy) pipeSideStream(l *link, up net.Conn, kind string) {
	defer l.pipes.end()
	s := &SideStream{ID: p.newID(), Conn: l.info, Kind: kind, Start: time.Now()}
	defer func() {
		s.End = time.Now()
		l.info.SideStreams.Add(1)
		p.obs.SideStreamEnded(s)
	}()

	down, err := l.openClientStream()
	if err != nil {
		up.Close()
		s.ClosedFirst, s.Err = SideProxy, fmt.Errorf("open a stream to the client: %w", err)
		return
	}

	var first atomic.Int32 // the Side that closed first
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := &headTap{w: down, onHead: func(head []byte) { p.identify(l, s, head) }}
		s.ToClient = pipeOneWay(w, up, down, SideUpstream, &first)
		if !w.done {
			// The stream ended before its ID: name its cause anyway.
			p.identify(l, s, w.head)
		}
	}()
	s.ToUpstream = pipeOneWay(up, down, up, SideClient, &first)
	wg.Wait()
	s.ClosedFirst = Side(first.Load())
}

// pipeOneWay copies from src to dst until src ends, then closes dst, the
// other side's end: in yamux a closed stream reads no more either, so the
// side that closed could not have read anything more anyway. It records
// from as the side that closed first, unless the other way was first.
func pipeOneWay(dst io.Writer, src io.Reader, dstConn net.Conn, from Side, first *atomic.Int32) int64 {
	buf := make([]byte, sideStreamBuffer)
	n, _ := io.CopyBuffer(dst, onlyReader{src}, buf)
	first.CompareAndSwap(0, int32(from))
	dstConn.Close()
	return n
}

// onlyReader hides a reader's WriterTo, so io.CopyBuffer uses its buffer.
type onlyReader struct{ io.Reader }

// identify reads the sidechannel ID from the first bytes the upstream sent
// and names the forward call the stream belongs to.
func (p *Proxy) identify(l *link, s *SideStream, head []byte) {
	if s.Kind == sidechannelMagic && len(head) >= len(sidechannelMagic)+8 {
		s.ChannelID = int64(binary.BigEndian.Uint64(head[len(sidechannelMagic):]))
		s.HasChannelID = true
	}
	s.Cause = l.sideStreamCause(s)
}

// headTap passes writes on, and calls onHead once with the first
// len(sidechannel)+8 bytes, or with what there was when the stream ended
// earlier.
type headTap struct {
	w      io.Writer
	head   []byte
	done   bool
	onHead func([]byte)
}

func (t *headTap) Write(p []byte) (int, error) {
	if !t.done {
		need := len(sidechannelMagic) + 8 - len(t.head)
		t.head = append(t.head, p[:min(need, len(p))]...)
		if len(t.head) == len(sidechannelMagic)+8 {
			t.done = true
			t.onHead(t.head)
		}
	}
	return t.w.Write(p)
}

// pipeGroup counts a link's side streams in flight, so the link's end
// waits for them, and refuses new ones once the link is closing.
type pipeGroup struct {
	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

func (g *pipeGroup) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *pipeGroup) end() { g.wg.Done() }

// closeAndWait refuses new side streams and waits for those in flight.
func (g *pipeGroup) closeAndWait() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.wg.Wait()
}
