package answer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // error details by name

	"github.com/bcctl/bcctl/internal/dynamic"
)

// Errors of a person's actions, reported in ResultMsg.Err.
var (
	// ErrEnded: the call is already over (answered, expired, cancelled).
	ErrEnded = errors.New("the call has already ended")
	// ErrNeedsReply: a method that returns one message cannot end with OK
	// before its reply is sent.
	ErrNeedsReply = errors.New("this method returns one message: send a reply or an error")
	// ErrNoScript: no script was loaded, so it cannot answer.
	ErrNoScript = errors.New("no script is loaded (start with --answer SCRIPT)")
	// ErrAlreadyAnswering: responses were sent by hand, so the script
	// cannot take the call over.
	ErrAlreadyAnswering = errors.New("responses were already sent by hand; end the call yourself")
)

// decision is a person's action, carried out by the call's goroutine.
type decision struct {
	action Action
	msg    proto.Message  // ActionReply
	status *status.Status // ActionFail
	result chan error     // buffered: the goroutine never blocks on it
}

// Reply returns a tea.Cmd that sends the JSON reply to the caller. The
// reply is parsed as the method's output type first; when it does not fit,
// nothing is sent and the ResultMsg's error (a *dynamic.FieldError where
// possible) says where. For a method that returns one message the call
// then ends with OK; for a streaming method the call stays open for more.
func (c *Call) Reply(jsonText string) tea.Cmd {
	return func() tea.Msg {
		msg, err := ParseReply(c, jsonText)
		if err != nil {
			return ResultMsg{ID: c.ID, Action: ActionReply, Err: err}
		}
		return c.decide(decision{action: ActionReply, msg: msg})
	}
}

// End returns a tea.Cmd that ends the call with OK, after the responses sent
// so far. A method that returns one message needs its reply first
// (ErrNeedsReply).
func (c *Call) End() tea.Cmd {
	return func() tea.Msg { return c.decide(decision{action: ActionEnd}) }
}

// Fail returns a tea.Cmd that ends the call with code, message and
// details. details is "" for none, or JSON: one object or an array of
// objects, each a google.protobuf.Any with its "@type"
// ({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": ...}).
// Details that do not parse come back in the ResultMsg and nothing is sent.
func (c *Call) Fail(code codes.Code, message, details string) tea.Cmd {
	return func() tea.Msg {
		st, err := BuildStatus(code, message, details, c.r.resolver)
		if err != nil {
			return ResultMsg{ID: c.ID, Action: ActionFail, Err: err}
		}
		return c.decide(decision{action: ActionFail, status: st})
	}
}

// Delegate returns a tea.Cmd that lets the script answer the call, with
// the request messages already received. It fails with ErrNoScript
// without a script, and with ErrAlreadyAnswering after responses were sent
// by hand.
func (c *Call) Delegate() tea.Cmd {
	return func() tea.Msg { return c.decide(decision{action: ActionDelegate}) }
}

func (c *Call) decide(d decision) ResultMsg {
	d.result = make(chan error, 1)
	select {
	case c.decisions <- d:
	case <-c.done:
		return ResultMsg{ID: c.ID, Action: d.action, Err: ErrEnded}
	}
	return ResultMsg{ID: c.ID, Action: d.action, Err: <-d.result}
}

// ParseReply parses jsonText as a response of c's method.
func ParseReply(c *Call, jsonText string) (proto.Message, error) {
	out := c.Method.Output()
	if strings.TrimSpace(jsonText) == "" {
		return nil, fmt.Errorf("the reply is empty: write a %s as JSON ({} for an empty one)", out.FullName())
	}
	msg := dynamicpb.NewMessage(out)
	var resolver dynamic.TypeResolver
	if c.r != nil {
		resolver = c.r.resolver
	}
	if err := dynamic.ParseJSON([]byte(jsonText), msg, resolver); err != nil {
		return nil, err
	}
	return msg, nil
}

// BuildStatus builds the status of code, message and details (see
// Call.Fail for the details' JSON); resolver resolves their types.
func BuildStatus(code codes.Code, message, details string, resolver dynamic.TypeResolver) (*status.Status, error) {
	if code == codes.OK {
		return nil, errors.New("an error needs a code other than OK")
	}
	p := &spb.Status{Code: int32(code), Message: message}
	raw, err := splitDetails(details)
	if err != nil {
		return nil, err
	}
	types := detailResolver(resolver)
	for i, d := range raw {
		if err := knownType(d, types); err != nil {
			return nil, fmt.Errorf("details[%d]: %w", i, err)
		}
		a := &anypb.Any{}
		if err := dynamic.ParseJSON(d, a, types); err != nil {
			return nil, fmt.Errorf("details[%d]: %w", i, err)
		}
		p.Details = append(p.Details, a)
	}
	return status.FromProto(p), nil
}

// ErrUnknownDetail is wrapped when a detail's "@type" names a message that
// is not known (neither a google.rpc detail nor a message of the schema).
var ErrUnknownDetail = errors.New("unknown type")

// knownType checks the "@type" of one detail before protojson reads it,
// so that a missing or unknown type gets a plain error.
func knownType(detail json.RawMessage, types dynamic.TypeResolver) error {
	var head struct {
		Type *string `json:"@type"`
	}
	if err := json.Unmarshal(detail, &head); err != nil {
		return fmt.Errorf("want a JSON object with its \"@type\": %w", err)
	}
	if head.Type == nil {
		return errors.New(`no "@type": write {"@type": "type.googleapis.com/google.rpc.ErrorInfo", ...}`)
	}
	if _, err := types.FindMessageByURL(*head.Type); err != nil {
		return fmt.Errorf("%w %q: the google.rpc details and the messages of the schema are known", ErrUnknownDetail, *head.Type)
	}
	return nil
}

// splitDetails reads "" (none), one JSON object, or an array of them.
func splitDetails(details string) ([]json.RawMessage, error) {
	text := bytes.TrimSpace([]byte(details))
	if len(text) == 0 {
		return nil, nil
	}
	if text[0] == '{' {
		return []json.RawMessage{text}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(text, &list); err != nil {
		return nil, fmt.Errorf("details: want a JSON object or an array of objects, each with its \"@type\": %w", err)
	}
	return list, nil
}

// detailResolver resolves through resolver, then the program's registry
// (which knows the google.rpc error details).
func detailResolver(resolver dynamic.TypeResolver) dynamic.TypeResolver {
	if resolver == nil {
		return protoregistry.GlobalTypes
	}
	return dynamic.ChainTypes(resolver, protoregistry.GlobalTypes)
}
