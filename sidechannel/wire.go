package sidechannel

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"
)

// MetadataKey is the request header that carries a call's sidechannel ID, in
// decimal. When it appears more than once the server takes the last value,
// which lets a proxy (Praefect) append its own ID after its caller's.
const MetadataKey = "gitaly-sidechannel-id"

// HandshakeTimeout bounds the opening handshake: the server's writing of
// the preamble and waiting for the acknowledgement, and the client's
// writing of the acknowledgement. After the handshake the stream has no
// deadline; it lives as long as the call's context (see OpenSidechannel
// and RegisterSidechannel).
const HandshakeTimeout = 5 * time.Second

// MaxPacketPayload is the most payload one packet of the client's body
// carries: a packet's length, which counts its own four hex digits, is at
// most 0xfff0 (65520). Larger writes are split into packets of this size
// and a remainder.
const MaxPacketPayload = maxPacketLen - packetHeaderLen

const (
	// magic opens every sidechannel stream; it is listenmux.MagicLen bytes.
	magic = "sidechannel"
	// idLen is the size of the ID after the magic: a big-endian int64.
	idLen = 8
	// ack is the client's acknowledgement, the only one in the protocol.
	ack = "ok"

	packetHeaderLen = 4
	maxPacketLen    = 0xfff0
	// flushPacket ends the client's body.
	flushPacket = "0000"
)

// idFromMetadata returns the last sidechannel ID in the incoming metadata
// of ctx. A value that is not a decimal int64 counts as ID 0, as it does
// for Gitaly.
func idFromMetadata(ctx context.Context) (int64, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(MetadataKey)
	if len(values) == 0 {
		return 0, ErrMissingID
	}
	id, err := strconv.ParseInt(values[len(values)-1], 10, 64)
	if err != nil {
		return 0, nil
	}
	return id, nil
}
