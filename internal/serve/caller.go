package serve

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/internal/script"
)

// Targets makes a Hub a script.Caller: it finds the backchannels a `call`
// step goes to. to is "" (the caller, or in on_connect the peer that
// arrived), "all", or a peer ID written in the script. The caller's ID is
// the one its connection's handshake assigned, never anything it sent.
//
// A target that cannot be reached (a plain client, a peer that has gone)
// is still returned, with a connection that fails every call with
// UNAVAILABLE and the reason: the call is then made, fails, and is
// journaled like any other, so that the journal shows every call the
// script tried.
func (h *Hub) Targets(_ context.Context, from calls.Peer, to string) ([]script.Target, error) {
	switch to {
	case "", "caller":
		if from.BackchannelID == 0 {
			who := "the caller"
			if from.Addr != "" {
				who += " (" + from.Addr + ")"
			}
			st := status.Newf(codes.Unavailable, "%s has no backchannel: it connected as a plain gRPC client, without the multiplexing handshake", who)
			return []script.Target{{Peer: from, Conn: failingConn{st}}}, nil
		}
		return []script.Target{h.target(backchannel.ID(from.BackchannelID))}, nil
	case "all":
		peers := h.reg.Peers()
		out := make([]script.Target, 0, len(peers))
		for _, p := range peers {
			conn, err := h.peerConn(p.ID)
			if err != nil {
				continue // it left since the listing
			}
			out = append(out, script.Target{Peer: calls.Peer{Addr: addrString(p.RemoteAddr), BackchannelID: uint64(p.ID)}, Conn: conn})
		}
		return out, nil
	default:
		id, err := strconv.ParseUint(to, 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "call target %q is not caller, all or a peer ID", to)
		}
		return []script.Target{h.target(backchannel.ID(id))}, nil
	}
}

// target returns the backchannel of peer id, or a connection that fails
// with UNAVAILABLE when the peer is not connected.
func (h *Hub) target(id backchannel.ID) script.Target {
	conn, err := h.peerConn(id)
	if err != nil {
		return script.Target{Peer: calls.Peer{BackchannelID: uint64(id)}, Conn: failingConn{status.New(codes.Unavailable, h.notConnected(id))}}
	}
	info, _ := h.reg.Peer(id)
	return script.Target{Peer: calls.Peer{Addr: addrString(info.RemoteAddr), BackchannelID: uint64(id)}, Conn: conn}
}

// failingConn fails every call with st.
type failingConn struct{ st *status.Status }

func (c failingConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return c.st.Err()
}

func (c failingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, c.st.Err()
}

// notConnected says that peer id is not connected, and which peers are.
func (h *Hub) notConnected(id backchannel.ID) string {
	peers := h.reg.Peers()
	if len(peers) == 0 {
		return fmt.Sprintf("peer %d is not connected (no peer is)", id)
	}
	const show = 10
	ids := make([]string, 0, min(len(peers), show))
	for i, p := range peers {
		if i == show {
			break
		}
		ids = append(ids, strconv.FormatUint(uint64(p.ID), 10))
	}
	list := strings.Join(ids, ", ")
	if len(peers) > show {
		list += fmt.Sprintf(" and %d more", len(peers)-show)
	}
	return fmt.Sprintf("peer %d is not connected (connected: %s)", id, list)
}
