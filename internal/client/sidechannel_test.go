package client_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/bcctl/bcctl/internal/client"
	"github.com/bcctl/bcctl/internal/dynamic"
	"github.com/bcctl/bcctl/internal/script"
)

// fetchUpstream answers PostUploadPackWithSidechannel through its
// sidechannel with the size of the body, and SSHUploadPackWithSidechannel
// without opening it.
const fetchUpstream = `
rules:
  - match: {method: gitaly.SmartHTTPService/PostUploadPackWithSidechannel}
    do:
      - sidechannel: {as: body, reply: "got ${body.size}"}
      - reply: {}
  - match: {method: gitaly.SSHService/SSHUploadPackWithSidechannel}
    reply: {}
`

// sidechannelCall opens a session on up with the --answer script answer
// (none when "") and makes a call to method with side.
func sidechannelCall(t *testing.T, up *upstream, answer, method string, side *client.Sidechannel) *client.ForwardCall {
	t.Helper()
	ctx := testCtx(t)
	cfg := client.Config{Dial: dialConfig(up.addr), Target: up.addr, Schema: client.Schema{Files: filesOf(corpusFiles(t))}, Backchannel: &client.Backchannel{}}
	if answer != "" {
		cfg.Backchannel.Script = writeFile(t, "answer.yaml", answer)
	}
	s, err := client.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	md, err := dynamic.FindMethod(ctx, s.Forward(), method)
	if err != nil {
		t.Fatal(err)
	}
	if side != nil && side.Answer == nil {
		side.Answer = s.SidechannelAnswer(method)
	}
	sent := false
	fc, err := s.Invoke(ctx, client.Invocation{
		Method: md, Sidechannel: side,
		Next: func(proto.Message) error {
			if sent {
				return io.EOF
			}
			sent = true
			return nil
		},
	})
	if err != nil || fc == nil {
		t.Fatalf("Invoke = %v, %v", fc, err)
	}
	return fc
}

func hexSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSidechannelInvoke: the body goes out, the response comes back, and
// both are recorded in the call's result and journal entry.
func TestSidechannelInvoke(t *testing.T) {
	up := startUpstreamWith(t, fetchUpstream)
	var resp bytes.Buffer
	fc := sidechannelCall(t, up, "", "gitaly.SmartHTTPService/PostUploadPackWithSidechannel",
		&client.Sidechannel{Body: strings.NewReader("0009done\n0000"), Response: &resp})
	if fc.Status.Code() != codes.OK || fc.SidechannelErr != nil {
		t.Fatalf("call %v, sidechannel %v; want OK and no error", fc.Status, fc.SidechannelErr)
	}
	if got, want := resp.String(), "got 13"; got != want {
		t.Errorf("response %q, want %q", got, want)
	}
	rec := fc.Sidechannel
	if rec == nil || rec.BodyBytes != 13 || rec.BodySHA256 != hexSHA("0009done\n0000") || rec.ResponseBytes != 6 || rec.ResponseSHA256 != hexSHA("got 13") {
		t.Errorf("sidechannel record %+v, want 13 bytes out and 6 back with their SHA-256", rec)
	}
	if e := fc.Entry.Sidechannel; e == nil || e.BodyBytes != 13 || e.ResponseBytes != 6 {
		t.Errorf("journal entry's sidechannel %+v, want the same", e)
	}
}

// TestSidechannelFailures: what a call's sidechannel reports when it goes
// wrong, on purpose or not.
func TestSidechannelFailures(t *testing.T) {
	up := startUpstreamWith(t, fetchUpstream)
	const post = "gitaly.SmartHTTPService/PostUploadPackWithSidechannel"
	tests := []struct {
		name     string
		answer   string
		method   string
		wantCode codes.Code
		wantMsg  string
		wantErr  error // the sidechannel's error; nil for none
	}{
		{
			name: "server never opens", method: "gitaly.SSHService/SSHUploadPackWithSidechannel",
			wantCode: codes.OK, wantErr: client.ErrSidechannelNotOpened,
		},
		{
			name:   "answer's expect misses",
			answer: "sidechannel:\n  - match: {method: " + post + "}\n    send: \"0009done\\n0000\"\n    expect: {text: PACK}\n",
			method: post, wantCode: codes.OK, wantErr: script.ErrExpectationsFailed,
		},
		{
			name:   "fault bad-framing",
			answer: "sidechannel:\n  - match: {method: " + post + "}\n    fault: bad-framing\n",
			method: post, wantCode: codes.Internal, wantMsg: "invalid packet",
		},
		{
			name:   "fault close-early",
			answer: "sidechannel:\n  - match: {method: " + post + "}\n    fault: close-early\n",
			method: post, wantCode: codes.Internal, wantMsg: "the body ended without its flush packet",
		},
		{
			name:   "fault never-ack",
			answer: "sidechannel:\n  - match: {method: " + post + "}\n    fault: never-ack\n",
			method: post, wantCode: codes.Internal, wantMsg: "no answer within 5s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := sidechannelCall(t, up, tt.answer, tt.method, &client.Sidechannel{})
			if fc.Status.Code() != tt.wantCode || !strings.Contains(fc.Status.Message(), tt.wantMsg) {
				t.Errorf("call %v %q, want %v containing %q", fc.Status.Code(), fc.Status.Message(), tt.wantCode, tt.wantMsg)
			}
			if (tt.wantErr == nil) != (fc.SidechannelErr == nil) || tt.wantErr != nil && !errors.Is(fc.SidechannelErr, tt.wantErr) {
				t.Errorf("sidechannel error %v, want %v", fc.SidechannelErr, tt.wantErr)
			}
			if fc.Sidechannel == nil {
				t.Fatal("no sidechannel record")
			}
			if fault, _ := strings.CutPrefix(tt.name, "fault "); fault != tt.name && fc.Sidechannel.Fault != fault {
				t.Errorf("the record's fault is %q, want %q", fc.Sidechannel.Fault, fault)
			}
		})
	}
}
