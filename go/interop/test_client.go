package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// Sizes and texts of the public interop test description.
const (
	largeRequestSize  = 271828
	largeResponseSize = 314159

	// client_streaming sends requestSizes and wants their sum.
	aggregatedPayloadSize = 74922

	// client_compressed_streaming sends a compressed and an uncompressed message.
	compressedStreamingFirstSize  = 27182
	compressedStreamingSecondSize = 45904
	compressedStreamingAggregated = 73086

	// server_compressed_streaming asks for a compressed and an uncompressed response.
	serverCompressedFirstSize  = 31415
	serverCompressedSecondSize = 92653

	echoInitialKey     = "x-grpc-test-echo-initial"
	echoInitialValue   = "test_initial_metadata_value"
	echoTrailingBinKey = "x-grpc-test-echo-trailing-bin"

	statusTestMessage    = "test status message"
	specialStatusMessage = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"

	// timeout_on_sleeping_server's deadline: far shorter than any server takes.
	sleepingServerTimeout = time.Millisecond
)

var (
	requestSizes       = []int{27182, 8, 1828, 45904}
	responseSizes      = []int{31415, 9, 2653, 58979}
	echoTrailingBinVal = string([]byte{0xab, 0xab, 0xab})
)

// newPayload returns a COMPRESSABLE payload of size zero bytes.
func newPayload(size int) *testingpb.Payload {
	return &testingpb.Payload{Type: testingpb.PayloadType_COMPRESSABLE, Body: make([]byte, size)}
}

// checkPayload checks that p has a body of want zero bytes and type
// COMPRESSABLE: the checks prefix+payload_size, payload_body, payload_type.
func checkPayload(ck *Checks, prefix, call string, p *testingpb.Payload, want int) {
	checkPayloadSize(ck, prefix, call, p, want)
	checkPayloadBody(ck, prefix, call, p)
	checkPayloadType(ck, prefix, call, p)
}

// checkPayloadSize checks that p has a body of want bytes (prefix+payload_size).
func checkPayloadSize(ck *Checks, prefix, call string, p *testingpb.Payload, want int) {
	got := len(p.GetBody())
	ck.check(prefix+"payload_size", got == want, "%s payload size = %d, want %d", call, got, want)
}

// checkPayloadBody checks that p's body is all zero bytes (prefix+payload_body).
func checkPayloadBody(ck *Checks, prefix, call string, p *testingpb.Payload) {
	body := p.GetBody()
	if i := slices.IndexFunc(body, func(b byte) bool { return b != 0 }); i >= 0 {
		ck.fail(prefix+"payload_body", "%s payload has byte 0x%02x at offset %d, want all zero bytes", call, body[i], i)
	} else {
		ck.pass(prefix + "payload_body")
	}
}

// checkPayloadType checks that p's type is COMPRESSABLE (prefix+payload_type).
func checkPayloadType(ck *Checks, prefix, call string, p *testingpb.Payload) {
	typ := p.GetType()
	ck.check(prefix+"payload_type", typ == testingpb.PayloadType_COMPRESSABLE, "%s payload type = %s, want COMPRESSABLE", call, typ)
}

// checkStatus checks the code (prefix+status_code) and, when message is not
// nil, the exact message (prefix+status_message) of the status that ended a
// call. The message is only compared when the code is right.
func checkStatus(ck *Checks, prefix, call string, err error, code codes.Code, message *string) {
	st := status.Convert(err)
	if !ck.check(prefix+"status_code", st.Code() == code, "%s ended with %s, want status %s", call, rpcStatus(err), code) {
		return
	}
	if message != nil {
		ck.check(prefix+"status_message", st.Message() == *message, "%s status message = %q, want %q", call, st.Message(), *message)
	}
}

// drain reads a stream to its end after the messages a case wanted: extra
// is the number of messages that still came, err nil when it ended OK.
func drain(s grpc.ClientStream, newMsg func() any) (extra int, err error) {
	for {
		err := s.RecvMsg(newMsg())
		if errors.Is(err, io.EOF) {
			return extra, nil
		}
		if err != nil {
			return extra, err
		}
		extra++
	}
}

func newStreamingOutputResponse() any { return new(testingpb.StreamingOutputCallResponse) }

func largeUnaryRequest() *testingpb.SimpleRequest {
	return &testingpb.SimpleRequest{
		ResponseType: testingpb.PayloadType_COMPRESSABLE,
		ResponseSize: largeResponseSize,
		Payload:      newPayload(largeRequestSize),
	}
}

// DoEmptyUnary calls EmptyCall and checks that an Empty comes back.
func DoEmptyUnary(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := c.Test.EmptyCall(ctx, &testingpb.Empty{})
	switch {
	case err != nil:
		ck.fail("status", "EmptyCall ended with %s, want OK", rpcStatus(err))
	case resp == nil:
		ck.fail("status", "EmptyCall returned no message, want an Empty")
	default:
		ck.pass("status")
	}
}

// DoLargeUnary calls UnaryCall with a 271828-byte payload and checks the
// 314159-byte response payload.
func DoLargeUnary(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := c.Test.UnaryCall(ctx, largeUnaryRequest())
	if !ck.check("status", err == nil, "UnaryCall ended with %s, want OK", rpcStatus(err)) {
		return
	}
	checkPayload(ck, "", "UnaryCall", resp.GetPayload(), largeResponseSize)
}

// DoClientStreaming streams four payloads to StreamingInputCall and checks
// the aggregated size.
func DoClientStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Test.StreamingInputCall(ctx)
	if err != nil {
		ck.fail("status", "StreamingInputCall could not start: %s", rpcStatus(err))
		return
	}
	for _, size := range requestSizes {
		// A failed Send means the call ended; CloseAndRecv reports why.
		if err := stream.Send(&testingpb.StreamingInputCallRequest{Payload: newPayload(size)}); err != nil {
			break
		}
	}
	resp, err := stream.CloseAndRecv()
	if !ck.check("status", err == nil, "StreamingInputCall ended with %s, want OK", rpcStatus(err)) {
		return
	}
	got := resp.GetAggregatedPayloadSize()
	ck.check("aggregated_size", got == aggregatedPayloadSize, "StreamingInputCall aggregated_payload_size = %d, want %d", got, aggregatedPayloadSize)
}

// DoServerStreaming asks StreamingOutputCall for four responses and checks
// their count, sizes and order.
func DoServerStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	req := &testingpb.StreamingOutputCallRequest{ResponseType: testingpb.PayloadType_COMPRESSABLE}
	for _, size := range responseSizes {
		req.ResponseParameters = append(req.ResponseParameters, &testingpb.ResponseParameters{Size: int32(size)})
	}
	stream, err := c.Test.StreamingOutputCall(ctx, req)
	if err != nil {
		ck.fail("status", "StreamingOutputCall could not start: %s", rpcStatus(err))
		return
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			ck.pass("status")
			break
		}
		if err != nil {
			ck.fail("status", "StreamingOutputCall ended with %s after %d responses, want OK", rpcStatus(err), n)
			break
		}
		if n < len(responseSizes) {
			checkPayload(ck, "", fmt.Sprintf("StreamingOutputCall response %d", n+1), resp.GetPayload(), responseSizes[n])
		}
		n++
	}
	ck.check("response_count", n == len(responseSizes), "StreamingOutputCall sent %d responses, want %d", n, len(responseSizes))
}

// DoPingPong plays four request/response rounds on FullDuplexCall, each
// request sent only after the previous response arrived.
func DoPingPong(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Test.FullDuplexCall(ctx)
	if err != nil {
		ck.fail("status", "FullDuplexCall could not start: %s", rpcStatus(err))
		return
	}
	for i := range requestSizes {
		req := &testingpb.StreamingOutputCallRequest{
			ResponseType:       testingpb.PayloadType_COMPRESSABLE,
			ResponseParameters: []*testingpb.ResponseParameters{{Size: int32(responseSizes[i])}},
			Payload:            newPayload(requestSizes[i]),
		}
		if err := stream.Send(req); err != nil {
			_, err := stream.Recv()
			ck.fail("status", "FullDuplexCall send of request %d failed; the call ended with %s", i+1, rpcStatus(err))
			return
		}
		resp, err := stream.Recv()
		if err != nil {
			ck.fail("status", "FullDuplexCall response %d: stream ended with %s, want a response", i+1, rpcStatus(err))
			return
		}
		checkPayload(ck, "", fmt.Sprintf("FullDuplexCall response %d", i+1), resp.GetPayload(), responseSizes[i])
	}
	if err := stream.CloseSend(); err != nil {
		ck.fail("status", "FullDuplexCall CloseSend: %v", err)
	}
	extra, err := drain(stream, newStreamingOutputResponse)
	ck.check("status", err == nil, "FullDuplexCall after half-close ended with %s, want OK", rpcStatus(err))
	ck.check("response_count", extra == 0, "FullDuplexCall sent %d responses after half-close, want 0", extra)
}

// DoEmptyStream half-closes FullDuplexCall at once and checks that it ends
// OK with no response.
func DoEmptyStream(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Test.FullDuplexCall(ctx)
	if err != nil {
		ck.fail("status", "FullDuplexCall could not start: %s", rpcStatus(err))
		return
	}
	if err := stream.CloseSend(); err != nil {
		ck.fail("status", "FullDuplexCall CloseSend: %v", err)
	}
	n, err := drain(stream, newStreamingOutputResponse)
	ck.check("status", err == nil, "FullDuplexCall with no request ended with %s, want OK", rpcStatus(err))
	ck.check("response_count", n == 0, "FullDuplexCall with no request sent %d responses, want 0", n)
}

// withEchoMetadata adds the two headers that a server must echo.
func withEchoMetadata(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx,
		echoInitialKey, echoInitialValue,
		echoTrailingBinKey, echoTrailingBinVal)
}

// checkEcho checks the echoed initial value in header (prefix+echo_initial)
// and binary value in trailer (prefix+echo_trailing).
func checkEcho(ck *Checks, prefix, call string, header, trailer metadata.MD) {
	got := header.Get(echoInitialKey)
	ck.check(prefix+"echo_initial", len(got) == 1 && got[0] == echoInitialValue,
		"%s initial metadata %s = %q, want [%q]", call, echoInitialKey, got, echoInitialValue)
	got = trailer.Get(echoTrailingBinKey)
	ck.check(prefix+"echo_trailing", len(got) == 1 && got[0] == echoTrailingBinVal,
		"%s trailing metadata %s = %q, want [%q]", call, echoTrailingBinKey, got, echoTrailingBinVal)
}

// DoCustomMetadata sends the echo headers on UnaryCall and on FullDuplexCall
// and checks the echoed header and trailer values of both.
func DoCustomMetadata(ctx context.Context, c *Clients, ck *Checks) {
	customMetadataUnary(ctx, c, ck)
	customMetadataFullDuplex(ctx, c, ck)
}

func customMetadataUnary(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(withEchoMetadata(ctx), RPCTimeout)
	defer cancel()
	var header, trailer metadata.MD
	resp, err := c.Test.UnaryCall(ctx, largeUnaryRequest(), grpc.Header(&header), grpc.Trailer(&trailer))
	if ck.check("unary.status", err == nil, "UnaryCall with echo metadata ended with %s, want OK", rpcStatus(err)) {
		checkPayload(ck, "unary.", "UnaryCall with echo metadata", resp.GetPayload(), largeResponseSize)
	}
	// The server echoes also when the call fails.
	checkEcho(ck, "unary.", "UnaryCall", header, trailer)
}

func customMetadataFullDuplex(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(withEchoMetadata(ctx), RPCTimeout)
	defer cancel()
	stream, err := c.Test.FullDuplexCall(ctx)
	if err != nil {
		ck.fail("duplex.status", "FullDuplexCall with echo metadata could not start: %s", rpcStatus(err))
		return
	}
	req := &testingpb.StreamingOutputCallRequest{
		ResponseType:       testingpb.PayloadType_COMPRESSABLE,
		ResponseParameters: []*testingpb.ResponseParameters{{Size: largeResponseSize}},
		Payload:            newPayload(largeRequestSize),
	}
	// A failed Send means the call ended; Recv below reports why.
	_ = stream.Send(req)
	resp, err := stream.Recv()
	gotResponse := err == nil
	if ck.check("duplex.status", gotResponse, "FullDuplexCall with echo metadata: stream ended with %s, want a response", rpcStatus(err)) {
		checkPayload(ck, "duplex.", "FullDuplexCall with echo metadata", resp.GetPayload(), largeResponseSize)
	}
	if err := stream.CloseSend(); err != nil {
		ck.fail("duplex.status", "FullDuplexCall CloseSend: %v", err)
	}
	extra, err := drain(stream, newStreamingOutputResponse)
	ck.check("duplex.status", err == nil, "FullDuplexCall with echo metadata ended with %s, want OK", rpcStatus(err))
	if gotResponse {
		ck.check("duplex.response_count", extra == 0, "FullDuplexCall with echo metadata sent %d responses after half-close, want 0", extra)
	}
	// Header blocks until the headers came, which they have by now; after
	// the stream ended, Trailer holds the trailers.
	header, err := stream.Header()
	if err != nil {
		ck.fail("duplex.echo_initial", "FullDuplexCall Header: %s", rpcStatus(err))
	}
	checkEcho(ck, "duplex.", "FullDuplexCall", header, stream.Trailer())
}

// DoStatusCodeAndMessage asks UnaryCall and FullDuplexCall to end with
// status UNKNOWN and a message, and checks both.
func DoStatusCodeAndMessage(ctx context.Context, c *Clients, ck *Checks) {
	msg := statusTestMessage
	echo := &testingpb.EchoStatus{Code: int32(codes.Unknown), Message: msg}
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		_, err := c.Test.UnaryCall(ctx, &testingpb.SimpleRequest{ResponseStatus: echo})
		checkStatus(ck, "unary.", "UnaryCall(response_status=2)", err, codes.Unknown, &msg)
	}()
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		stream, err := c.Test.FullDuplexCall(ctx)
		if err != nil {
			ck.fail("duplex.status_code", "FullDuplexCall could not start: %s", rpcStatus(err))
			return
		}
		// A failed Send or CloseSend means the call ended; drain reports how.
		_ = stream.Send(&testingpb.StreamingOutputCallRequest{ResponseStatus: echo})
		_ = stream.CloseSend()
		_, err = drain(stream, newStreamingOutputResponse)
		checkStatus(ck, "duplex.", "FullDuplexCall(response_status=2)", err, codes.Unknown, &msg)
	}()
}

// DoSpecialStatusMessage asks UnaryCall to end with a message of
// whitespace and non-ASCII characters and checks it byte for byte.
func DoSpecialStatusMessage(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	msg := specialStatusMessage
	req := &testingpb.SimpleRequest{ResponseStatus: &testingpb.EchoStatus{Code: int32(codes.Unknown), Message: msg}}
	_, err := c.Test.UnaryCall(ctx, req)
	checkStatus(ck, "", "UnaryCall(response_status=2, special message)", err, codes.Unknown, &msg)
}

// DoUnimplementedMethod calls TestService.UnimplementedCall and wants UNIMPLEMENTED.
func DoUnimplementedMethod(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	_, err := c.Test.UnimplementedCall(ctx, &testingpb.Empty{})
	checkStatus(ck, "", "TestService.UnimplementedCall", err, codes.Unimplemented, nil)
}

// DoUnimplementedService calls UnimplementedService.UnimplementedCall and
// wants UNIMPLEMENTED.
func DoUnimplementedService(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	_, err := c.Unimplemented.UnimplementedCall(ctx, &testingpb.Empty{})
	checkStatus(ck, "", "UnimplementedService.UnimplementedCall", err, codes.Unimplemented, nil)
}

// DoCancelAfterBegin starts StreamingInputCall, cancels it before sending
// anything and wants CANCELLED.
func DoCancelAfterBegin(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	callCtx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	stream, err := c.Test.StreamingInputCall(callCtx)
	if err != nil {
		ck.fail("status_code", "StreamingInputCall could not start: %s", rpcStatus(err))
		return
	}
	cancelCall()
	_, err = stream.CloseAndRecv()
	checkStatus(ck, "", "StreamingInputCall cancelled before the first message", err, codes.Canceled, nil)
}

// DoCancelAfterFirstResponse cancels FullDuplexCall after its first
// response and wants CANCELLED. status is the call up to the first
// response, status_code the call after the cancel.
func DoCancelAfterFirstResponse(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	callCtx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	stream, err := c.Test.FullDuplexCall(callCtx)
	if err != nil {
		ck.fail("status", "FullDuplexCall could not start: %s", rpcStatus(err))
		return
	}
	req := &testingpb.StreamingOutputCallRequest{
		ResponseType:       testingpb.PayloadType_COMPRESSABLE,
		ResponseParameters: []*testingpb.ResponseParameters{{Size: int32(responseSizes[0])}},
		Payload:            newPayload(requestSizes[0]),
	}
	if err := stream.Send(req); err != nil {
		_, err := stream.Recv()
		ck.fail("status", "FullDuplexCall send of the first request failed; the call ended with %s", rpcStatus(err))
		return
	}
	resp, err := stream.Recv()
	if !ck.check("status", err == nil, "FullDuplexCall first response: stream ended with %s, want a response", rpcStatus(err)) {
		return
	}
	checkPayload(ck, "", "FullDuplexCall first response", resp.GetPayload(), responseSizes[0])
	cancelCall()
	_, err = stream.Recv()
	checkStatus(ck, "", "FullDuplexCall cancelled after the first response", err, codes.Canceled, nil)
}

// DoTimeoutOnSleepingServer gives FullDuplexCall a 1 ms deadline and wants
// DEADLINE_EXCEEDED.
func DoTimeoutOnSleepingServer(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, sleepingServerTimeout)
	defer cancel()
	const call = "FullDuplexCall with a 1 ms deadline"
	stream, err := c.Test.FullDuplexCall(ctx)
	if err != nil {
		// The deadline may pass before the call even starts: that is fine.
		checkStatus(ck, "", call, err, codes.DeadlineExceeded, nil)
		return
	}
	// Sending may fail once the deadline passed; the status comes from Recv.
	_ = stream.Send(&testingpb.StreamingOutputCallRequest{
		ResponseType: testingpb.PayloadType_COMPRESSABLE,
		Payload:      newPayload(requestSizes[0]),
	})
	_, err = drain(stream, newStreamingOutputResponse)
	checkStatus(ck, "", call, err, codes.DeadlineExceeded, nil)
}

// compressedUnaryRequest is large_unary's request with expect_compressed set.
func compressedUnaryRequest(expect bool) *testingpb.SimpleRequest {
	req := largeUnaryRequest()
	req.ExpectCompressed = &testingpb.BoolValue{Value: expect}
	return req
}

// DoClientCompressedUnary probes that the server rejects an uncompressed
// request that claims to be compressed, then sends one gzip-compressed
// and one uncompressed request.
func DoClientCompressedUnary(ctx context.Context, c *Clients, ck *Checks) {
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		_, err := c.Test.UnaryCall(ctx, compressedUnaryRequest(true))
		checkStatus(ck, "probe.", "UnaryCall(expect_compressed=true) sent uncompressed", err, codes.InvalidArgument, nil)
	}()
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		ctx, rec := withCallRecord(ctx)
		const call = "UnaryCall(expect_compressed=true) sent gzip-compressed"
		resp, err := c.Test.UnaryCall(ctx, compressedUnaryRequest(true), grpc.UseCompressor(gzip.Name))
		if ck.check("compressed.status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
			checkPayload(ck, "compressed.", call, resp.GetPayload(), largeResponseSize)
		}
		// A check of this client, not of the server: the probe means
		// nothing unless the request really left compressed.
		sent := rec.sent()
		ck.check("compressed.sent_compressed", len(sent) == 1 && sent[0],
			"%s: this client sent messages compressed=%v, want [true]", call, sent)
	}()
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		const call = "UnaryCall(expect_compressed=false) sent uncompressed"
		resp, err := c.Test.UnaryCall(ctx, compressedUnaryRequest(false))
		if ck.check("uncompressed.status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
			checkPayload(ck, "uncompressed.", call, resp.GetPayload(), largeResponseSize)
		}
	}()
}

// checkReceivedCompression compares whether each of the n responses a call
// returned arrived compressed with what was asked: the check
// prefix+response_compressed.
func checkReceivedCompression(ck *Checks, prefix, call string, rec *callRecord, want []bool, n int) {
	name := prefix + "response_compressed"
	got := rec.received()
	if len(got) != n {
		ck.fail(name, "%s: the stats handler saw %d responses, the call returned %d (was the channel made with interop.DialOptions?)", call, len(got), n)
		return
	}
	// The response count is checked by the caller; compare what both have.
	for i := range min(len(got), len(want)) {
		ck.check(name, got[i] == want[i], "%s response %d arrived compressed=%t, want compressed=%t", call, i+1, got[i], want[i])
	}
}

// DoServerCompressedUnary asks UnaryCall for a compressed, then an
// uncompressed response, and checks the payload and the compression of each.
func DoServerCompressedUnary(ctx context.Context, c *Clients, ck *Checks) {
	for _, compressed := range []bool{true, false} {
		func() {
			ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
			defer cancel()
			ctx, rec := withCallRecord(ctx)
			prefix := "uncompressed."
			if compressed {
				prefix = "compressed."
			}
			call := fmt.Sprintf("UnaryCall(response_compressed=%t)", compressed)
			req := largeUnaryRequest()
			req.ResponseCompressed = &testingpb.BoolValue{Value: compressed}
			resp, err := c.Test.UnaryCall(ctx, req)
			if !ck.check(prefix+"status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
				return
			}
			checkPayload(ck, prefix, call, resp.GetPayload(), largeResponseSize)
			checkReceivedCompression(ck, prefix, call, rec, []bool{compressed}, 1)
		}()
	}
}

// DoClientCompressedStreaming probes that the server rejects an uncompressed
// StreamingInputCall message that claims to be compressed, then sends a
// gzip-compressed and an uncompressed message on one call.
//
// grpc-go 1.85 has no per-message compression switch: a call compresses
// every message with the compressor chosen when it started. What it has is
// grpc.PreparedMsg, which encodes a message with the codec and compressor of
// a given stream; SendMsg then sends those bytes, with their compression
// flag, on whatever stream it is given. So the uncompressed message is
// prepared on the probe's call, which has no compressor, and sent on the
// gzip call. The client checks from its own stats that the two messages
// really left compressed and uncompressed (stream.sent_compressed).
func DoClientCompressedStreaming(ctx context.Context, c *Clients, ck *Checks) {
	first := &testingpb.StreamingInputCallRequest{
		ExpectCompressed: &testingpb.BoolValue{Value: true},
		Payload:          newPayload(compressedStreamingFirstSize),
	}
	second := &testingpb.StreamingInputCallRequest{
		ExpectCompressed: &testingpb.BoolValue{Value: false},
		Payload:          newPayload(compressedStreamingSecondSize),
	}
	var uncompressed grpc.PreparedMsg
	prepared := false
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		const call = "StreamingInputCall(expect_compressed=true) sent uncompressed"
		probe, err := c.Test.StreamingInputCall(ctx)
		if err != nil {
			ck.fail("probe.status_code", "%s could not start: %s", call, rpcStatus(err))
			return
		}
		if err := uncompressed.Encode(probe, second); err != nil {
			// Without it the mixed stream cannot be sent as the case needs.
			ck.fail("stream.sent_compressed", "grpc.PreparedMsg.Encode on an uncompressed StreamingInputCall: %v", err)
		} else {
			prepared = true
		}
		// A failed Send means the server already ended the call.
		_ = probe.Send(first)
		_, err = probe.CloseAndRecv()
		checkStatus(ck, "probe.", call, err, codes.InvalidArgument, nil)
	}()
	if !prepared {
		return
	}
	func() {
		ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
		defer cancel()
		ctx, rec := withCallRecord(ctx)
		const call = "StreamingInputCall(compressed 27182 bytes, then uncompressed 45904 bytes)"
		stream, err := c.Test.StreamingInputCall(ctx, grpc.UseCompressor(gzip.Name))
		if err != nil {
			ck.fail("stream.status", "%s could not start: %s", call, rpcStatus(err))
			return
		}
		// A failed Send means the server ended the call; CloseAndRecv says how.
		if err := stream.Send(first); err == nil {
			_ = stream.SendMsg(&uncompressed)
		}
		resp, err := stream.CloseAndRecv()
		if ck.check("stream.status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err)) {
			got := resp.GetAggregatedPayloadSize()
			ck.check("stream.aggregated_size", got == compressedStreamingAggregated,
				"%s aggregated_payload_size = %d, want %d", call, got, compressedStreamingAggregated)
		}
		sent, want := rec.sent(), []bool{true, false}
		ck.check("stream.sent_compressed", slices.Equal(sent, want),
			"%s: this client sent messages compressed=%v, want %v", call, sent, want)
	}()
}

// DoServerCompressedStreaming asks StreamingOutputCall for a compressed and
// an uncompressed response and checks their sizes, order and compression.
func DoServerCompressedStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	ctx, rec := withCallRecord(ctx)
	sizes := []int{serverCompressedFirstSize, serverCompressedSecondSize}
	compressed := []bool{true, false}
	req := &testingpb.StreamingOutputCallRequest{ResponseType: testingpb.PayloadType_COMPRESSABLE}
	for i := range sizes {
		req.ResponseParameters = append(req.ResponseParameters, &testingpb.ResponseParameters{
			Size:       int32(sizes[i]),
			Compressed: &testingpb.BoolValue{Value: compressed[i]},
		})
	}
	const call = "StreamingOutputCall(compressed 31415, uncompressed 92653)"
	stream, err := c.Test.StreamingOutputCall(ctx, req)
	if err != nil {
		ck.fail("status", "%s could not start: %s", call, rpcStatus(err))
		return
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			ck.pass("status")
			break
		}
		if err != nil {
			ck.fail("status", "%s ended with %s after %d responses, want OK", call, rpcStatus(err), n)
			break
		}
		if n < len(sizes) {
			checkPayload(ck, "", fmt.Sprintf("%s response %d", call, n+1), resp.GetPayload(), sizes[n])
		}
		n++
	}
	ck.check("response_count", n == len(sizes), "%s sent %d responses, want %d", call, n, len(sizes))
	checkReceivedCompression(ck, "", call, rec, compressed, n)
}
