package proxy

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message as the bytes that travelled, unparsed. The
// proxy never needs a schema to relay a call: it hands the buffers gRPC
// read from one side to the other side's writer without copying them.
//
// A frame owns a reference to its buffers. Sending a frame passes the
// reference to gRPC (the codec's Marshal takes it); a frame that is not
// sent must be released.
type frame struct {
	data mem.BufferSlice
}

// release drops the frame's reference to its buffers, if it still has it.
func (f *frame) release() {
	if f.data != nil {
		f.data.Free()
		f.data = nil
	}
}

// Len is the message's size in bytes.
func (f *frame) Len() int { return f.data.Len() }

// rawCodec is the codec of every relayed call: Unmarshal keeps the
// received buffers, Marshal hands them on.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

// Marshal passes the frame's buffers to gRPC, which frees them once
// written.
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("proxy: codec: cannot marshal %T", v)
	}
	data := f.data
	f.data = nil
	return data, nil
}

// Unmarshal keeps a reference to data, which gRPC frees after Unmarshal
// returns.
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("proxy: codec: cannot unmarshal into %T", v)
	}
	data.Ref()
	f.data = data
	return nil
}

// Name is "proto": the relayed bytes are whatever the peers exchange,
// protobuf in practice, and the content type of the upstream call says so
// unless the caller named another subtype (which is then passed on).
func (rawCodec) Name() string { return "proto" }
