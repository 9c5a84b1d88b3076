package script

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/bcctl/bcctl/backchannel"
	"github.com/bcctl/bcctl/internal/calls"
	"github.com/bcctl/bcctl/listenmux"
	"github.com/bcctl/bcctl/sidechannel"
)

// sidechannelEnv serves a script's engine behind a listenmux with the
// backchannel handshaker, as bcctl serve does, and dials it as a
// sidechannel client.
type sidechannelEnv struct {
	cc       *grpc.ClientConn
	plain    *grpc.ClientConn
	registry *sidechannel.Registry
	events   *events
}

func newSidechannelEnv(t *testing.T, src string) *sidechannelEnv {
	t.Helper()
	env := &sidechannelEnv{registry: sidechannel.NewRegistry(), events: &events{}}
	e := NewEngine(parse(t, src), Upstream, Options{Observer: env.events})
	mux := listenmux.New(insecure.NewCredentials())
	mux.Register(backchannel.NewServerHandshaker(nil, backchannel.NewRegistry(), nil))
	srv := grpc.NewServer(grpc.Creds(mux), engineHandler(t, e))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	handshaker := sidechannel.NewClientHandshaker(nil, env.registry, nil, sidechannel.ClientConfiguration())
	dial := func(creds grpc.DialOption) *grpc.ClientConn {
		cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), creds)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	env.cc = dial(grpc.WithTransportCredentials(handshaker.ClientHandshake(insecure.NewCredentials())))
	env.plain = dial(grpc.WithTransportCredentials(insecure.NewCredentials()))
	return env
}

// sidechannelResult is what a call with a sidechannel gave.
type sidechannelResult struct {
	reply    string // the response message, as JSON
	st       *status.Status
	response []byte // what came through the sidechannel
	cbErr    error  // the waiter's result
}

// call makes acme.Users/Get on cc with a sidechannel that sends body.
func (env *sidechannelEnv) call(t *testing.T, cc *grpc.ClientConn, body []byte) sidechannelResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res sidechannelResult
	ctx, waiter := sidechannel.RegisterSidechannel(ctx, env.registry, func(c *sidechannel.ClientConn) error {
		written := make(chan error, 1)
		go func() {
			_, err := c.Write(body)
			if err == nil {
				err = c.CloseWrite()
			}
			written <- err
		}()
		resp, err := io.ReadAll(c)
		res.response = resp
		return errors.Join(err, <-written)
	})
	m := loadTestSchema(t).method(t, "acme.Users/Get")
	reply := dynamicpb.NewMessage(m.Output())
	err := cc.Invoke(ctx, "/acme.Users/Get", msg(t, m.Input(), `{"id": "7"}`), reply)
	res.st = status.Convert(err)
	if err == nil {
		res.reply = toJSON(t, reply)
	}
	res.cbErr = waiter.Close()
	return res
}

// lastSidechannel is the sidechannel record of the last answered call.
func (env *sidechannelEnv) lastSidechannel(t *testing.T) *calls.Sidechannel {
	t.Helper()
	evs := env.events.all()
	if len(evs) == 0 {
		t.Fatal("no call was observed")
	}
	return evs[len(evs)-1].Sidechannel
}

const gitFetchBody = "0032want 0123456789012345678901234567890123456789\n0009done\n0000"

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSidechannelStep covers the serve step: reading the body, matching
// and capturing it, answering from text, a file or a size, and the faults.
func TestSidechannelStep(t *testing.T) {
	dir := t.TempDir()
	packFile := filepath.Join(dir, "pack.bin")
	if err := os.WriteFile(packFile, []byte("PACK from a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	pattern := make([]byte, 70000)
	for i := range pattern {
		pattern[i] = byte(i)
	}
	tests := []struct {
		name         string
		step         string
		plain        bool // call over a plain connection
		wantCode     codes.Code
		wantMsg      string
		wantReply    string
		wantResponse []byte
		wantCbErr    error
		wantRecord   func(*calls.Sidechannel) string // "" when fine
	}{
		{
			name: "read, match, capture and answer",
			step: `
      - sidechannel:
          expect: {size: {gt: 10}, lines: {contains: done}, text: {contains: "want 0123"}}
          as: body
          reply: "${body.size} bytes, ${body.sha256}"
      - reply: {id: "${body.id}", name: "${body.truncated}"}`,
			wantResponse: []byte("63 bytes, " + hexSHA([]byte(gitFetchBody))),
			wantReply:    `{"id":"0","name":"false"}`,
			wantRecord: func(r *calls.Sidechannel) string {
				if r.BodyBytes != int64(len(gitFetchBody)) || r.BodySHA256 != hexSHA([]byte(gitFetchBody)) || r.ResponseBytes != int64(len("63 bytes, ")+64) || r.Err != "" {
					return "want the body's size and SHA-256, the response's size and no error"
				}
				return ""
			},
		},
		{
			name:         "reply_file",
			step:         "\n      - sidechannel: {reply_file: " + packFile + "}\n      - reply: {}",
			wantResponse: []byte("PACK from a file"), wantReply: `{}`,
		},
		{
			name:         "reply_size",
			step:         "\n      - sidechannel: {reply_size: 70000}\n      - reply: {}",
			wantResponse: pattern, wantReply: `{}`,
		},
		{
			name:         "raw reply",
			step:         "\n      - sidechannel: {reply: {hex: 00ff}}\n      - reply: {}",
			wantResponse: []byte{0, 0xff}, wantReply: `{}`,
		},
		{
			name:         "no reply",
			step:         "\n      - sidechannel:\n      - reply: {}",
			wantResponse: []byte{}, wantReply: `{}`,
		},
		{
			name: "expect fails, else",
			step: `
      - sidechannel:
          expect: {size: {lt: 10}}
          reply: never sent
          else: {code: FAILED_PRECONDITION, message: body too big}
      - reply: {}`,
			wantCode: codes.FailedPrecondition, wantMsg: "body too big", wantResponse: []byte{},
			wantRecord: func(r *calls.Sidechannel) string {
				if !strings.Contains(r.Err, "body.size") {
					return "want the mismatch in Err"
				}
				return ""
			},
		},
		{
			name:     "expect fails, no else",
			step:     "\n      - sidechannel: {expect: {sha256: abc}}\n      - reply: {}",
			wantCode: codes.Aborted, wantMsg: `body.sha256 is "` + hexSHA([]byte(gitFetchBody)) + `", want "abc"`, wantResponse: []byte{},
		},
		{
			name:         "fault close-early",
			step:         "\n      - sidechannel: {fault: close-early}\n      - reply: {}",
			wantResponse: []byte{}, wantReply: `{}`,
			wantRecord: func(r *calls.Sidechannel) string {
				if r.Fault != "close-early" || r.BodyBytes != 0 {
					return "want fault close-early and no body read"
				}
				return ""
			},
		},
		{
			name:     "fault wrong-id",
			step:     "\n      - sidechannel: {fault: wrong-id}\n      - reply: {}",
			wantCode: codes.Internal, wantMsg: "open: sidechannel: the client did not acknowledge the sidechannel",
			wantCbErr: sidechannel.ErrCallbackNotRun,
		},
		{
			name:     "plain connection",
			step:     "\n      - sidechannel:\n      - reply: {}",
			plain:    true,
			wantCode: codes.Internal, wantMsg: "open: sidechannel: open: non-multiplexed connection",
			wantCbErr: sidechannel.ErrCallbackNotRun,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSidechannelEnv(t, "rules:\n  - match: {method: acme.Users/Get}\n    do:"+tt.step+"\n")
			cc := env.cc
			if tt.plain {
				cc = env.plain
			}
			res := env.call(t, cc, []byte(gitFetchBody))
			if res.st.Code() != tt.wantCode || !strings.Contains(res.st.Message(), tt.wantMsg) {
				t.Errorf("status %v %q, want %v containing %q", res.st.Code(), res.st.Message(), tt.wantCode, tt.wantMsg)
			}
			if res.reply != tt.wantReply {
				t.Errorf("reply %s, want %s", res.reply, tt.wantReply)
			}
			if tt.wantResponse != nil && !bytes.Equal(res.response, tt.wantResponse) {
				t.Errorf("sidechannel response %d bytes %.40q, want %d bytes %.40q", len(res.response), res.response, len(tt.wantResponse), tt.wantResponse)
			}
			if !errors.Is(res.cbErr, tt.wantCbErr) {
				t.Errorf("callback: %v, want %v", res.cbErr, tt.wantCbErr)
			}
			if tt.wantRecord != nil {
				rec := env.lastSidechannel(t)
				if rec == nil {
					t.Fatal("the call's event has no sidechannel record")
				}
				if why := tt.wantRecord(rec); why != "" {
					t.Errorf("sidechannel record %+v: %s", *rec, why)
				}
			}
		})
	}
}

// TestSidechannelStepLoadErrors checks that the loader refuses what a
// sidechannel step cannot do, saying where and why.
func TestSidechannelStepLoadErrors(t *testing.T) {
	rule := func(steps string) string {
		return "rules:\n  - match: {method: acme.Users/Get}\n    do:\n" + steps + "\n      - reply: {}\n"
	}
	tests := []struct {
		name, src, want string
	}{
		{"in backchannel rules", "backchannel:\n  - match: {method: acme.Users/Get}\n    do:\n      - sidechannel:\n      - reply: {}\n", "sidechannel steps belong in the do, each or end of rules (bcctl serve)"},
		{"two replies", rule("      - sidechannel: {reply: x, reply_size: 10}"), "give one of reply, reply_file and reply_size, not reply and reply_size"},
		{"unknown fault", rule("      - sidechannel: {fault: close-late}"), `unknown fault "close-late"; known: close-early, wrong-id`},
		{"fault with reply", rule("      - sidechannel: {fault: close-early, reply: x}"), "fault close-early never reads the body or answers"},
		{"bad size", rule("      - sidechannel: {reply_size: 8 megs}"), `"8 megs" is not a size such as 4096, 64KiB or 8MiB`},
		{"too big", rule("      - sidechannel: {reply_size: 2GiB}"), "2GiB is more than the largest size, 1GiB"},
		{"missing file", rule("      - sidechannel: {reply_file: /no/such/file}"), "no such file or directory"},
		{"unknown expect field", rule("      - sidechannel: {expect: {bytes: 3}}"), `unknown field "bytes" in bcctl.script.SidechannelData`},
		{"unknown capture field", rule("      - sidechannel: {as: body, reply: \"${body.length}\"}"), "length"},
		{"else without expect", rule("      - sidechannel: {else: {code: ABORTED}}"), "else needs an expect to act on"},
		{"unknown key", rule("      - sidechannel: {replay: x}"), "replay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErr(t, tt.src); !strings.Contains(got, tt.want) {
				t.Errorf("load error:\n%s\nwant it to contain %q", got, tt.want)
			}
		})
	}
}
