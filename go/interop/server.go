package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
	"polyglot-grpc-interop/go/gen/helloworld"
)

// DefaultGreeting is the first word of every Greeter reply unless the
// server is told otherwise.
const DefaultGreeting = "Hello"

// maxGreeterCount bounds SayHelloStream's count, per helloworld.proto.
const maxGreeterCount = 1000

// NewServer returns a server with helloworld.Greeter, grpc.testing.TestService,
// grpc.health.v1.Health (every service SERVING) and reflection registered.
// grpc.testing.UnimplementedService is deliberately not registered. opts
// come after the server's own options (add credentials there).
func NewServer(greeting string, opts ...grpc.ServerOption) *grpc.Server {
	// The stats handler is how TestService learns whether a request message
	// arrived compressed (see compression.go).
	opts = append([]grpc.ServerOption{grpc.StatsHandler(compressionStats{server: true})}, opts...)
	s := grpc.NewServer(opts...)
	helloworld.RegisterGreeterServer(s, &GreeterServer{Greeting: greeting})
	testingpb.RegisterTestServiceServer(s, &TestServer{})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s
}

// GreeterServer implements helloworld.Greeter with the reply texts of
// helloworld.proto.
type GreeterServer struct {
	helloworld.UnimplementedGreeterServer
	// Greeting is the first word of every reply.
	Greeting string
}

// SayHello answers "<greeting> <name>" with index 0.
func (g *GreeterServer) SayHello(_ context.Context, req *helloworld.HelloRequest) (*helloworld.HelloReply, error) {
	return &helloworld.HelloReply{Message: g.Greeting + " " + req.GetName()}, nil
}

// SayHelloStream answers count replies "<greeting> <name> (i of count)".
func (g *GreeterServer) SayHelloStream(req *helloworld.HelloStreamRequest, stream grpc.ServerStreamingServer[helloworld.HelloReply]) error {
	count := req.GetCount()
	if count < 0 || count > maxGreeterCount {
		return status.Errorf(codes.InvalidArgument, "count = %d, want 0..%d", count, maxGreeterCount)
	}
	for i := int32(1); i <= count; i++ {
		msg := fmt.Sprintf("%s %s (%d of %d)", g.Greeting, req.GetName(), i, count)
		if err := stream.Send(&helloworld.HelloReply{Message: msg, Index: i}); err != nil {
			return err
		}
	}
	return nil
}

// SayHelloToAll answers, after half-close, one reply greeting every name received.
func (g *GreeterServer) SayHelloToAll(stream grpc.ClientStreamingServer[helloworld.HelloRequest, helloworld.HelloReply]) error {
	var names []string
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		names = append(names, req.GetName())
	}
	return stream.SendAndClose(&helloworld.HelloReply{
		Message: g.Greeting + " " + strings.Join(names, ", "),
		Index:   int32(len(names)),
	})
}

// SayHelloChat answers each name as soon as it arrives.
func (g *GreeterServer) SayHelloChat(stream grpc.BidiStreamingServer[helloworld.HelloRequest, helloworld.HelloReply]) error {
	for i := int32(1); ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&helloworld.HelloReply{Message: g.Greeting + " " + req.GetName(), Index: i}); err != nil {
			return err
		}
	}
}

// TestServer implements grpc.testing.TestService as the contract describes.
// UnimplementedCall is left to the embedded type, which answers UNIMPLEMENTED.
type TestServer struct {
	testingpb.UnimplementedTestServiceServer
}

// echoMetadata sends back the echo request headers: the initial one in the
// response headers, the binary one in the trailers (which grpc-go sends
// with any final status, errors included).
func echoMetadata(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(echoInitialKey); len(v) > 0 {
		if err := grpc.SetHeader(ctx, metadata.MD{echoInitialKey: v}); err != nil {
			return status.Errorf(codes.Internal, "echo %s: %v", echoInitialKey, err)
		}
	}
	if v := md.Get(echoTrailingBinKey); len(v) > 0 {
		if err := grpc.SetTrailer(ctx, metadata.MD{echoTrailingBinKey: v}); err != nil {
			return status.Errorf(codes.Internal, "echo %s: %v", echoTrailingBinKey, err)
		}
	}
	return nil
}

// requestedStatus is the status a request asks the call to end with, or nil.
func requestedStatus(s *testingpb.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

// checkExpectCompressed fails with INVALID_ARGUMENT when the request message
// just received claims expect_compressed but arrived uncompressed.
func checkExpectCompressed(ctx context.Context, expect *testingpb.BoolValue) error {
	if !expect.GetValue() {
		return nil
	}
	rec := callRecordFrom(ctx)
	if rec == nil {
		return status.Error(codes.Internal, "server cannot observe request compression: no interop stats handler")
	}
	compressed, ok := rec.lastIn()
	if !ok {
		return status.Error(codes.Internal, "server cannot observe request compression: no message recorded")
	}
	if !compressed {
		return status.Error(codes.InvalidArgument, "expect_compressed is true but the request message arrived uncompressed")
	}
	return nil
}

// requestCompressed reports whether the call's requests use a compressor,
// in which case grpc-go compresses the responses with it by default.
func requestCompressed(ctx context.Context) bool {
	rec := callRecordFrom(ctx)
	if rec == nil {
		return false
	}
	enc := rec.inEncoding()
	return enc != "" && enc != encoding.Identity
}

// setResponseCompression makes the call's responses gzip-compressed or not.
// It reports whether they will be compressed. It must run before the
// response headers go out.
func setResponseCompression(ctx context.Context, compressed bool) bool {
	name := encoding.Identity
	if compressed {
		name = gzip.Name
	}
	if err := grpc.SetSendCompressor(ctx, name); err != nil {
		// Typically a client that did not advertise gzip in
		// grpc-accept-encoding: it could not read a compressed response.
		slog.Warn("cannot set the response compression the request asks for", "compressor", name, "err", err)
		return requestCompressed(ctx)
	}
	return compressed
}

func payloadOf(size int32) (*testingpb.Payload, error) {
	if size < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "response size = %d, want >= 0", size)
	}
	return newPayload(int(size)), nil
}

// EmptyCall answers an Empty.
func (*TestServer) EmptyCall(ctx context.Context, _ *testingpb.Empty) (*testingpb.Empty, error) {
	if err := echoMetadata(ctx); err != nil {
		return nil, err
	}
	return &testingpb.Empty{}, nil
}

// UnaryCall answers response_size zero bytes, honouring expect_compressed,
// response_compressed and response_status.
func (*TestServer) UnaryCall(ctx context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	if err := echoMetadata(ctx); err != nil {
		return nil, err
	}
	if err := checkExpectCompressed(ctx, req.GetExpectCompressed()); err != nil {
		return nil, err
	}
	if rc := req.GetResponseCompressed(); rc != nil {
		setResponseCompression(ctx, rc.GetValue())
	}
	if err := requestedStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	p, err := payloadOf(req.GetResponseSize())
	if err != nil {
		return nil, err
	}
	return &testingpb.SimpleResponse{Payload: p}, nil
}

// CacheableUnaryCall answers as UnaryCall.
func (s *TestServer) CacheableUnaryCall(ctx context.Context, req *testingpb.SimpleRequest) (*testingpb.SimpleResponse, error) {
	return s.UnaryCall(ctx, req)
}

// StreamingOutputCall answers one response per ResponseParameters.
func (*TestServer) StreamingOutputCall(req *testingpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testingpb.StreamingOutputCallResponse]) error {
	if err := echoMetadata(stream.Context()); err != nil {
		return err
	}
	if err := requestedStatus(req.GetResponseStatus()); err != nil {
		return err
	}
	r := responder{stream: stream}
	return r.respond(req.GetResponseParameters())
}

// StreamingInputCall sums the payload sizes it receives and answers the sum
// after half-close.
func (*TestServer) StreamingInputCall(stream grpc.ClientStreamingServer[testingpb.StreamingInputCallRequest, testingpb.StreamingInputCallResponse]) error {
	if err := echoMetadata(stream.Context()); err != nil {
		return err
	}
	var sum int32
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testingpb.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		if err := checkExpectCompressed(stream.Context(), req.GetExpectCompressed()); err != nil {
			return err
		}
		sum += int32(len(req.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each request as soon as it arrives.
func (*TestServer) FullDuplexCall(stream grpc.BidiStreamingServer[testingpb.StreamingOutputCallRequest, testingpb.StreamingOutputCallResponse]) error {
	if err := echoMetadata(stream.Context()); err != nil {
		return err
	}
	r := responder{stream: stream}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := requestedStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := r.respond(req.GetResponseParameters()); err != nil {
			return err
		}
	}
}

// HalfDuplexCall reads every request, then answers them all.
func (*TestServer) HalfDuplexCall(stream grpc.BidiStreamingServer[testingpb.StreamingOutputCallRequest, testingpb.StreamingOutputCallResponse]) error {
	if err := echoMetadata(stream.Context()); err != nil {
		return err
	}
	var reqs []*testingpb.StreamingOutputCallRequest
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, req)
	}
	r := responder{stream: stream}
	for _, req := range reqs {
		if err := requestedStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := r.respond(req.GetResponseParameters()); err != nil {
			return err
		}
	}
	return nil
}

// responder sends the responses of one streaming call, each compressed or
// not as its ResponseParameters ask.
//
// grpc-go picks one compressor per call, before the response headers go
// out, and compresses every response with it. So the call is made to
// compress (gzip) when any response of the first batch asks for it, and a
// response that asks not to be compressed is then sent as a
// grpc.PreparedMsg encoded with the compressor the call was created with:
// none, unless the request itself came compressed. A compressed response
// after the call went out uncompressed cannot be had; it is logged.
type responder struct {
	stream  grpc.ServerStream
	started bool // the compressor is chosen and can no longer change
	gzip    bool // the call compresses responses
}

// respond waits interval_us before each response, then sends it.
func (r *responder) respond(params []*testingpb.ResponseParameters) error {
	if len(params) == 0 {
		return nil
	}
	ctx := r.stream.Context()
	if !r.started {
		r.started = true
		r.gzip = requestCompressed(ctx)
		var want *bool
		for _, p := range params {
			if c := p.GetCompressed(); c != nil {
				v := c.GetValue()
				if want == nil || v {
					want = &v
				}
			}
		}
		if want != nil {
			r.gzip = setResponseCompression(ctx, *want)
		}
	}
	for _, p := range params {
		if err := sleep(ctx, time.Duration(p.GetIntervalUs())*time.Microsecond); err != nil {
			return err
		}
		payload, err := payloadOf(p.GetSize())
		if err != nil {
			return err
		}
		if err := r.send(&testingpb.StreamingOutputCallResponse{Payload: payload}, p.GetCompressed()); err != nil {
			return err
		}
	}
	return nil
}

func (r *responder) send(resp *testingpb.StreamingOutputCallResponse, compressed *testingpb.BoolValue) error {
	switch {
	case compressed == nil || compressed.GetValue() == r.gzip:
		return r.stream.SendMsg(resp)
	case compressed.GetValue():
		slog.Warn("cannot compress one response of a call whose responses go out uncompressed")
		return r.stream.SendMsg(resp)
	}
	if requestCompressed(r.stream.Context()) {
		slog.Warn("cannot send one response uncompressed on a call whose requests came compressed")
		return r.stream.SendMsg(resp)
	}
	var pm grpc.PreparedMsg
	if err := pm.Encode(r.stream, resp); err != nil {
		return status.Errorf(codes.Internal, "prepare uncompressed response: %v", err)
	}
	return r.stream.SendMsg(&pm)
}

// sleep waits d, or less when the call ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
