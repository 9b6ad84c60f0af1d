package interop

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// The cases of the groups http2_negative and wire are played against the
// bad HTTP/2 server of fixtures/ (CONTRACT.md, "Cases against the bad
// server"). Each makes a channel of its own, like the client's (Clients.Dial),
// and closes it after; every call is large_unary's UnaryCall and carries
// x-interop-case with the case's name, which tells the bad server how to
// answer. The client's receive limit stays grpc-go's default, 4 MiB.

// CaseHeader is the request metadata that names the case to the bad server.
const CaseHeader = "x-interop-case"

const (
	// goawayPause is the time between goaway's two calls: the bad server
	// sends GOAWAY after the first, and the second must find a new
	// connection by itself.
	goawayPause = time.Second
	// maxStreamsAtOnce is how many calls max_streams makes at the same time
	// on a channel whose server allows one stream at a time.
	maxStreamsAtOnce = 10
	// silentServerTimeout is silent_server's deadline: the server never
	// answers, so the call ends with it.
	silentServerTimeout = time.Second
	// wireTimeout is the deadline of the other wire cases' calls (the
	// contract's): every answer of the bad server comes at once on loopback,
	// and a library that waits for more than the server sends ends at it.
	wireTimeout = 3 * time.Second
)

// CaseChannel is the channel of its own that an http2_negative or wire case
// calls the bad server on.
type CaseChannel struct {
	// Case is the name of the case, sent as x-interop-case on every call.
	Case string
	Test testingpb.TestServiceClient
}

// call is how failure messages name a call of the case.
func (ch *CaseChannel) call() string {
	return fmt.Sprintf("UnaryCall(%s: %s)", CaseHeader, ch.Case)
}

// largeUnary makes large_unary's UnaryCall on ctx (which carries the
// deadline), with x-interop-case added, and returns what grpc-go returned.
func (ch *CaseChannel) largeUnary(ctx context.Context) (*testingpb.SimpleResponse, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, CaseHeader, ch.Case)
	return ch.Test.UnaryCall(ctx, largeUnaryRequest())
}

// onCaseChannel runs f, the body of the case name, on a channel of its own
// made with c.Dial, and closes the channel after.
func onCaseChannel(name string, f func(ctx context.Context, ch *CaseChannel, ck *Checks)) func(context.Context, *Clients, *Checks) {
	return func(ctx context.Context, c *Clients, ck *Checks) {
		if c.Dial == nil {
			ck.failCase(name + ": no way to make a channel of its own (Clients.Dial is nil)")
			return
		}
		cc, err := c.Dial()
		if err != nil {
			ck.failCase(fmt.Sprintf("%s: new channel: %v", name, err))
			return
		}
		defer func() { _ = cc.Close() }()
		f(ctx, &CaseChannel{Case: name, Test: testingpb.NewTestServiceClient(cc)}, ck)
	}
}

// http2NegativeCases are the official negative HTTP/2 cases, in the order
// of the catalogue.
var http2NegativeCases = []Case{
	{"goaway", GroupHTTP2Negative, []string{"first.status", "first.payload_size", "second.status", "second.payload_size"}, onCaseChannel("goaway", DoGoaway)},
	{"rst_after_header", GroupHTTP2Negative, []string{"not_ok"}, onCaseChannel("rst_after_header", DoRstStream)},
	{"rst_during_data", GroupHTTP2Negative, []string{"not_ok"}, onCaseChannel("rst_during_data", DoRstStream)},
	{"rst_after_data", GroupHTTP2Negative, []string{"not_ok"}, onCaseChannel("rst_after_data", DoRstStream)},
	{"ping", GroupHTTP2Negative, []string{"status", "payload_size"}, onCaseChannel("ping", DoPing)},
	{"max_streams", GroupHTTP2Negative, []string{"status", "payload_size", "payload_type"}, onCaseChannel("max_streams", DoMaxStreams)},
	{"data_frame_padding", GroupHTTP2Negative, []string{"status", "payload_size", "payload_body"}, onCaseChannel("data_frame_padding", DoDataFramePadding)},
	{"no_df_padding_sanity_test", GroupHTTP2Negative, []string{"status", "payload_size", "payload_body"}, onCaseChannel("no_df_padding_sanity_test", DoDataFramePadding)},
}

// DoGoaway makes two calls one second apart, the bad server sending GOAWAY
// after the first: both must be OK with a 314159-byte payload, the second
// on a new connection grpc-go makes by itself.
func DoGoaway(ctx context.Context, ch *CaseChannel, ck *Checks) {
	for i, which := range []string{"first", "second"} {
		if i > 0 && !waitUntil(ctx, time.Now().Add(goawayPause)) {
			return // the case was given up (RunCase's backstop)
		}
		func() {
			ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
			defer cancel()
			prefix, call := which+".", which+" "+ch.call()
			resp, err := ch.largeUnary(ctx)
			if ck.check(prefix+"status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
				checkPayloadSize(ck, prefix, call, resp.GetPayload(), largeResponseSize)
			}
		}()
	}
}

// DoRstStream makes one call that the bad server resets (after the
// headers, during or after the response message, as the case's name says):
// it must not succeed, whatever status grpc-go gives it.
func DoRstStream(ctx context.Context, ch *CaseChannel, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	_, err := ch.largeUnary(ctx)
	ck.check("not_ok", err != nil, "%s ended with %s, want any status but OK (the server reset the stream)", ch.call(), rpcStatus(err))
}

// DoPing makes one call during which the bad server sends PINGs and ends
// the call OK only when grpc-go acknowledged each.
func DoPing(ctx context.Context, ch *CaseChannel, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := ch.largeUnary(ctx)
	if ck.check("status", err == nil, "%s ended with %s, want OK", ch.call(), rpcStatus(err)) {
		checkPayloadSize(ck, "", ch.call(), resp.GetPayload(), largeResponseSize)
	}
}

// DoMaxStreams makes one call, then ten at the same time on the same
// channel, to a server that allows one stream at a time: grpc-go must hold
// the calls above the limit back, so that every call is OK with a
// 314159-byte COMPRESSABLE payload.
func DoMaxStreams(ctx context.Context, ch *CaseChannel, ck *Checks) {
	check := func(call string, resp *testingpb.SimpleResponse, err error) {
		if ck.check("status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
			checkPayloadSize(ck, "", call, resp.GetPayload(), largeResponseSize)
			checkPayloadType(ck, "", call, resp.GetPayload())
		}
	}
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		resp, err := ch.largeUnary(ctx)
		check("first "+ch.call(), resp, err)
	}()
	// One deadline for the ten calls, which all start now.
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range maxStreamsAtOnce {
		wg.Go(func() {
			resp, err := ch.largeUnary(ctx)
			check(fmt.Sprintf("%s %d of %d at once", ch.call(), i+1, maxStreamsAtOnce), resp, err)
		})
	}
	wg.Wait()
}

// DoDataFramePadding makes one call whose response comes in DATA frames of
// 5 bytes (with or without padding, as the case's name says): OK with 314159
// zero bytes.
func DoDataFramePadding(ctx context.Context, ch *CaseChannel, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := ch.largeUnary(ctx)
	if ck.check("status", err == nil, "%s ended with %s, want OK", ch.call(), rpcStatus(err)) {
		checkPayloadSize(ck, "", ch.call(), resp.GetPayload(), largeResponseSize)
		checkPayloadBody(ck, "", ch.call(), resp.GetPayload())
	}
}

// WireCase is one row of the contract's wire table: what the bad server
// breaks is in its name; the call must end with Code.
type WireCase struct {
	Name string
	// Code is the status the call must end with, the spec's for the answer.
	Code codes.Code
	// Timeout is the call's deadline.
	Timeout time.Duration
}

// WireCases is the contract's wire table, in its order. The codes come
// from the spec: the HTTP-to-gRPC status mapping for answers without
// grpc-status, statuscodes.md and compression.md.
var WireCases = []WireCase{
	{"http_400", codes.Internal, wireTimeout},
	{"http_401", codes.Unauthenticated, wireTimeout},
	{"http_403", codes.PermissionDenied, wireTimeout},
	{"http_404", codes.Unimplemented, wireTimeout},
	{"http_429", codes.Unavailable, wireTimeout},
	{"http_502", codes.Unavailable, wireTimeout},
	{"http_503", codes.Unavailable, wireTimeout},
	{"http_504", codes.Unavailable, wireTimeout},
	{"missing_grpc_status", codes.Unknown, wireTimeout},
	{"non_grpc_content_type", codes.Unknown, wireTimeout},
	{"unparsable_grpc_status", codes.Unknown, wireTimeout},
	{"truncated_message", codes.Internal, wireTimeout},
	{"invalid_protobuf", codes.Internal, wireTimeout},
	{"response_too_large", codes.ResourceExhausted, wireTimeout},
	{"compressed_without_encoding", codes.Internal, wireTimeout},
	{"unknown_response_encoding", codes.Internal, wireTimeout},
	{"two_responses", codes.Unimplemented, wireTimeout},
	{"no_response", codes.Unimplemented, wireTimeout},
	{"connection_dropped", codes.Unavailable, wireTimeout},
	{"silent_server", codes.DeadlineExceeded, silentServerTimeout},
}

// wireCaseList turns WireCases into cases, each running DoWireCase.
func wireCaseList() []Case {
	out := make([]Case, len(WireCases))
	for i, wc := range WireCases {
		out[i] = Case{wc.Name, GroupWire, []string{"status_code"}, onCaseChannel(wc.Name, func(ctx context.Context, ch *CaseChannel, ck *Checks) {
			DoWireCase(ctx, ch, ck, wc)
		})}
	}
	return out
}

// DoWireCase makes the one call of a wire case, with wc.Timeout as its
// deadline, and checks that it ended with wc.Code (status_code). The
// message is reported, not checked.
func DoWireCase(ctx context.Context, ch *CaseChannel, ck *Checks, wc WireCase) {
	ctx, cancel := ck.withTimeout(ctx, wc.Timeout)
	defer cancel()
	_, err := ch.largeUnary(ctx)
	checkStatus(ck, "", ch.call(), err, wc.Code, nil)
}
