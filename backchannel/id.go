package backchannel

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ID identifies one multiplexed peer connection on a server. IDs start at 1,
// increase monotonically, are never reused within a Registry and are never
// taken from anything the peer sends.
type ID uint64

// ErrNonMultiplexedConnection is returned by GetPeerID and GetYamuxSession
// for a call that did not arrive over a multiplexed connection.
var ErrNonMultiplexedConnection = errors.New("non-multiplexed connection")

// AuthInfo is the credentials.AuthInfo of a multiplexed connection. It
// carries the peer's ID and yamux session next to the AuthInfo of the
// wrapped transport credentials.
type AuthInfo struct {
	// Wrapped is the AuthInfo of the wrapped transport credentials, for
	// example credentials.TLSInfo. It may be nil.
	Wrapped credentials.AuthInfo
	// ID is the peer's backchannel ID.
	ID ID

	session *yamux.Session
}

// AuthType returns the wrapped credentials' auth type.
func (a AuthInfo) AuthType() string {
	if a.Wrapped == nil {
		return "backchannel"
	}
	return a.Wrapped.AuthType()
}

// GetCommonAuthInfo forwards the wrapped credentials' security level so that
// credentials.CheckSecurityLevel judges the real transport. When the wrapped
// AuthInfo does not report one, the level is InvalidSecurityLevel, which
// CheckSecurityLevel treats as it treats any such AuthInfo.
func (a AuthInfo) GetCommonAuthInfo() credentials.CommonAuthInfo {
	if c, ok := a.Wrapped.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	}); ok {
		return c.GetCommonAuthInfo()
	}
	return credentials.CommonAuthInfo{}
}

// Unwrap returns the wrapped credentials' AuthInfo, for example to reach
// credentials.TLSInfo and the peer's certificates.
func (a AuthInfo) Unwrap() credentials.AuthInfo { return a.Wrapped }

// WithID returns an AuthInfo that wraps authInfo and carries id, as the
// server handshake does. It is exported for tests that need a peer with an
// ID without a network connection.
func WithID(authInfo credentials.AuthInfo, id ID) credentials.AuthInfo {
	return AuthInfo{Wrapped: authInfo, ID: id}
}

// GetPeerID returns the backchannel ID of the connection the call in ctx
// arrived on, or ErrNonMultiplexedConnection.
func GetPeerID(ctx context.Context) (ID, error) {
	info, err := authInfoFromContext(ctx)
	if err != nil {
		return 0, err
	}
	return info.ID, nil
}

// GetYamuxSession returns the yamux session of the connection the call in
// ctx arrived on, or ErrNonMultiplexedConnection.
func GetYamuxSession(ctx context.Context) (*yamux.Session, error) {
	info, err := authInfoFromContext(ctx)
	if err != nil {
		return nil, err
	}
	if info.session == nil {
		return nil, fmt.Errorf("backchannel: peer %d has no yamux session", info.ID)
	}
	return info.session, nil
}

func authInfoFromContext(ctx context.Context) (AuthInfo, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return AuthInfo{}, errors.New("backchannel: no peer in context")
	}
	info, ok := p.AuthInfo.(AuthInfo)
	if !ok {
		return AuthInfo{}, ErrNonMultiplexedConnection
	}
	return info, nil
}
