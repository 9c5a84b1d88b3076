package admin

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The Go types below mirror the messages of admin.proto field for field;
// their JSON form is the messages' protojson form (proto field names), which
// is how they are converted to and from dynamic messages.

// ServerInfo mirrors GetServerResponse.
type ServerInfo struct {
	Listen              []string   `json:"listen,omitempty"`
	Script              string     `json:"script,omitempty"`
	Services            []string   `json:"services,omitempty"`
	Started             *time.Time `json:"started,omitempty"`
	Peers               uint32     `json:"peers,omitempty"`
	ForwardCalls        uint64     `json:"forward_calls,omitempty,string"`
	ReverseCalls        uint64     `json:"reverse_calls,omitempty,string"`
	RejectedConnections uint64     `json:"rejected_connections,omitempty,string"`
	JournalErrors       uint64     `json:"journal_errors,omitempty,string"`
	ScriptReloads       uint32     `json:"script_reloads,omitempty"`
	ScriptError         string     `json:"script_error,omitempty"`
}

// Peer mirrors the Peer message: one connected multiplexed peer.
type Peer struct {
	ID             uint64     `json:"id,omitempty,string"`
	RemoteAddr     string     `json:"remote_addr,omitempty"`
	ConnectedAt    *time.Time `json:"connected_at,omitempty"`
	ForwardCalls   uint64     `json:"forward_calls,omitempty,string"`
	ReverseCalls   uint64     `json:"reverse_calls,omitempty,string"`
	LastCall       *LastCall  `json:"last_call,omitempty"`
	Services       []string   `json:"services,omitempty"`
	Discovery      string     `json:"discovery,omitempty"`
	DiscoveryError string     `json:"discovery_error,omitempty"`
	OnConnectError string     `json:"on_connect_error,omitempty"`
}

// LastCall mirrors the LastCall message.
type LastCall struct {
	At     *time.Time `json:"at,omitempty"`
	Dir    string     `json:"dir,omitempty"`
	Method string     `json:"method,omitempty"`
	Code   string     `json:"code,omitempty"`
}

// peerList mirrors ListPeersResponse.
type peerList struct {
	Peers []Peer `json:"peers,omitempty"`
}

// PeerChange mirrors the PeerChange message.
type PeerChange struct {
	Kind string     `json:"kind,omitempty"`
	Peer *Peer      `json:"peer,omitempty"`
	At   *time.Time `json:"at,omitempty"`
}

// watchPeersResponse mirrors WatchPeersResponse.
type watchPeersResponse struct {
	Snapshot *peerList   `json:"snapshot,omitempty"`
	Change   *PeerChange `json:"change,omitempty"`
}

// Metadata mirrors the Metadata message.
type Metadata struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// CallPeerRequest mirrors the CallPeerRequest message.
type CallPeerRequest struct {
	PeerID      uint64     `json:"peer_id,omitempty,string"`
	Method      string     `json:"method,omitempty"`
	RequestJSON string     `json:"request_json,omitempty"`
	Metadata    []Metadata `json:"metadata,omitempty"`
	TimeoutMS   uint32     `json:"timeout_ms,omitempty"`
}

// CallPeerResponse mirrors the CallPeerResponse message.
type CallPeerResponse struct {
	Code          string     `json:"code,omitempty"`
	Message       string     `json:"message,omitempty"`
	DetailsJSON   []string   `json:"details_json,omitempty"`
	ResponsesJSON []string   `json:"responses_json,omitempty"`
	Header        []Metadata `json:"header,omitempty"`
	Trailer       []Metadata `json:"trailer,omitempty"`
	DurationMS    float64    `json:"duration_ms,omitempty"`
	JournalID     uint64     `json:"journal_id,omitempty,string"`
	Method        string     `json:"method,omitempty"`
}

// JournalQuery mirrors StreamJournalRequest.
type JournalQuery struct {
	Method    string  `json:"method,omitempty"`
	Dir       string  `json:"dir,omitempty"`
	PeerID    *uint64 `json:"peer_id,omitempty,string"`
	Code      string  `json:"code,omitempty"`
	AfterID   uint64  `json:"after_id,omitempty,string"`
	Follow    bool    `json:"follow,omitempty"`
	NoBacklog bool    `json:"no_backlog,omitempty"`
}

// JournalLine mirrors StreamJournalResponse: one journal entry as its JSON
// line.
type JournalLine struct {
	ID   uint64 `json:"id,omitempty,string"`
	Line string `json:"line,omitempty"`
}

// Expectations mirrors CheckExpectationsResponse.
type Expectations struct {
	OK      bool                `json:"ok,omitempty"`
	Report  string              `json:"report,omitempty"`
	Results []ExpectationResult `json:"results,omitempty"`
}

// ExpectationResult mirrors the ExpectationResult message.
type ExpectationResult struct {
	Name  string `json:"name,omitempty"`
	Pos   string `json:"pos,omitempty"`
	Count uint64 `json:"count,omitempty,string"`
	OK    bool   `json:"ok,omitempty"`
	Line  string `json:"line,omitempty"`
}

// empty mirrors the empty request messages.
type empty struct{}

// toMessage converts v to a dynamic message of type md through JSON.
func toMessage(md protoreflect.MessageDescriptor, v any) (proto.Message, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("admin: encode %s: %w", md.FullName(), err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("admin: encode %s: %w", md.FullName(), err)
	}
	return msg, nil
}

// fromMessage fills v from msg through JSON.
func fromMessage(msg proto.Message, v any) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return fmt.Errorf("admin: decode %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("admin: decode %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}
