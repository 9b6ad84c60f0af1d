package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// checkPayload checks that p has a body of want zero bytes.
func checkPayload(ck *checks, call string, p *testingpb.Payload, want int) {
	body := p.GetBody()
	if len(body) != want {
		ck.errorf("%s payload size = %d, want %d", call, len(body), want)
		return
	}
	if i := bytes.IndexFunc(body, func(r rune) bool { return r != 0 }); i >= 0 {
		ck.errorf("%s payload has a non-zero byte at offset %d, want all zero bytes", call, i)
	}
}

// checkStatus checks the code and, when message is not nil, the exact
// message of the status that ended a call.
func checkStatus(ck *checks, call string, err error, code codes.Code, message *string) {
	st := status.Convert(err)
	if st.Code() != code {
		ck.errorf("%s ended with %s, want status %s", call, rpcStatus(err), code)
		return
	}
	if message != nil && st.Message() != *message {
		ck.errorf("%s status message = %q, want %q", call, st.Message(), *message)
	}
}

// drain reads a stream to its end: n is the number of messages that still
// came, err nil when the stream ended OK.
func drain(recv func() error) (n int, err error) {
	for {
		err := recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func largeUnaryRequest() *testingpb.SimpleRequest {
	return &testingpb.SimpleRequest{
		ResponseType: testingpb.PayloadType_COMPRESSABLE,
		ResponseSize: largeResponseSize,
		Payload:      newPayload(largeRequestSize),
	}
}

// DoEmptyUnary calls EmptyCall and checks that an Empty comes back.
func DoEmptyUnary(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := c.Test.EmptyCall(ctx, &testingpb.Empty{})
	switch {
	case err != nil:
		ck.errorf("EmptyCall ended with %s, want OK", rpcStatus(err))
	case resp == nil:
		ck.errorf("EmptyCall returned no message, want an Empty")
	}
	return ck.err()
}

// DoLargeUnary calls UnaryCall with a 271828-byte payload and checks the
// 314159-byte response payload.
func DoLargeUnary(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	resp, err := c.Test.UnaryCall(ctx, largeUnaryRequest())
	if err != nil {
		ck.errorf("UnaryCall ended with %s, want OK", rpcStatus(err))
		return ck.err()
	}
	checkPayload(&ck, "UnaryCall", resp.GetPayload(), largeResponseSize)
	return ck.err()
}

// DoClientStreaming streams four payloads to StreamingInputCall and checks
// the aggregated size.
func DoClientStreaming(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Test.StreamingInputCall(ctx)
	if err != nil {
		ck.errorf("StreamingInputCall could not start: %s", rpcStatus(err))
		return ck.err()
	}
	for _, size := range requestSizes {
		// A failed Send means the call ended; CloseAndRecv reports why.
		if err := stream.Send(&testingpb.StreamingInputCallRequest{Payload: newPayload(size)}); err != nil {
			break
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		ck.errorf("StreamingInputCall ended with %s, want OK", rpcStatus(err))
		return ck.err()
	}
	if got := resp.GetAggregatedPayloadSize(); got != aggregatedPayloadSize {
		ck.errorf("StreamingInputCall aggregated_payload_size = %d, want %d", got, aggregatedPayloadSize)
	}
	return ck.err()
}

// DoServerStreaming asks StreamingOutputCall for four responses and checks
// their count, sizes and order.
func DoServerStreaming(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	req := &testingpb.StreamingOutputCallRequest{ResponseType: testingpb.PayloadType_COMPRESSABLE}
	for _, size := range responseSizes {
		req.ResponseParameters = append(req.ResponseParameters, &testingpb.ResponseParameters{Size: int32(size)})
	}
	stream, err := c.Test.StreamingOutputCall(ctx, req)
	if err != nil {
		ck.errorf("StreamingOutputCall could not start: %s", rpcStatus(err))
		return ck.err()
	}
	n, err := drain(func() error {
		resp, err := stream.Recv()
		if err == nil && n < len(responseSizes) {
			// n is the count before this message: drain increments it afterwards.
		}
		if err == nil {
			i := len(seenSizes(&ck, nil))
			_ = i
			checkResponseAt(&ck, "StreamingOutputCall", resp, responseSizes)
		}
		return err
	})
	_ = n
	return ck.err()
}
