package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/status"

	"polyglot-grpc-interop/go/gen/helloworld"
)

// The Greeter cases greet these names and expect the default greeting.
const (
	greeterName    = "interop"
	greeterCount   = 5
	expectGreeting = "Hello"
)

var (
	greeterAllNames  = []string{"alice", "bob", "carol"}
	greeterChatNames = []string{"alice", "bob", "carol", "dave"}
)

// rpcStatus describes the status carried by err, for failure messages.
func rpcStatus(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("status %s %q", st.Code(), st.Message())
}

// DoGreeterUnary calls SayHello and checks the reply text and index 0.
func DoGreeterUnary(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	reply, err := c.Greeter.SayHello(ctx, &helloworld.HelloRequest{Name: greeterName})
	if err != nil {
		ck.errorf("SayHello(name=%q) ended with %s, want OK", greeterName, rpcStatus(err))
		return ck.err()
	}
	checkReply(&ck, "SayHello", reply, expectGreeting+" "+greeterName, 0)
	return ck.err()
}

// DoGreeterServerStreaming calls SayHelloStream for 5 replies and checks
// each reply's text and index, in order, and that no sixth one comes.
func DoGreeterServerStreaming(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Greeter.SayHelloStream(ctx, &helloworld.HelloStreamRequest{Name: greeterName, Count: greeterCount})
	if err != nil {
		ck.errorf("SayHelloStream(count=%d) could not start: %s", greeterCount, rpcStatus(err))
		return ck.err()
	}
	n := 0
	for {
		reply, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			ck.errorf("SayHelloStream(count=%d) ended with %s after %d replies, want OK", greeterCount, rpcStatus(err), n)
			break
		}
		n++
		if n <= greeterCount {
			want := fmt.Sprintf("%s %s (%d of %d)", expectGreeting, greeterName, n, greeterCount)
			checkReply(&ck, fmt.Sprintf("SayHelloStream reply %d", n), reply, want, int32(n))
		}
	}
	if n != greeterCount {
		ck.errorf("SayHelloStream(count=%d) sent %d replies, want %d", greeterCount, n, greeterCount)
	}
	return ck.err()
}

// DoGreeterClientStreaming streams three names to SayHelloToAll and checks
// the one reply that joins them.
func DoGreeterClientStreaming(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Greeter.SayHelloToAll(ctx)
	if err != nil {
		ck.errorf("SayHelloToAll could not start: %s", rpcStatus(err))
		return ck.err()
	}
	for _, name := range greeterAllNames {
		// A failed Send means the server ended the call; CloseAndRecv
		// below reports its status.
		if err := stream.Send(&helloworld.HelloRequest{Name: name}); err != nil {
			break
		}
	}
	reply, err := stream.CloseAndRecv()
	if err != nil {
		ck.errorf("SayHelloToAll ended with %s, want OK", rpcStatus(err))
		return ck.err()
	}
	want := expectGreeting + " " + strings.Join(greeterAllNames, ", ")
	checkReply(&ck, "SayHelloToAll", reply, want, int32(len(greeterAllNames)))
	return ck.err()
}

// DoGreeterBidiStreaming sends four names to SayHelloChat, each only after
// the reply to the previous one came back, which proves that the server
// answers before the client half-closes.
func DoGreeterBidiStreaming(ctx context.Context, c *Clients) error {
	var ck checks
	ctx, cancel := context.WithTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Greeter.SayHelloChat(ctx)
	if err != nil {
		ck.errorf("SayHelloChat could not start: %s", rpcStatus(err))
		return ck.err()
	}
	for i, name := range greeterChatNames {
		k := i + 1
		if err := stream.Send(&helloworld.HelloRequest{Name: name}); err != nil {
			_, err := stream.Recv()
			ck.errorf("SayHelloChat send of name %d (%q) failed; the call ended with %s", k, name, rpcStatus(err))
			return ck.err()
		}
		reply, err := stream.Recv()
		if err != nil {
			// A deadline here most likely means the server waited for
			// half-close before answering.
			ck.errorf("SayHelloChat reply %d: stream ended with %s, want a reply before name %d is sent", k, rpcStatus(err), k+1)
			return ck.err()
		}
		checkReply(&ck, fmt.Sprintf("SayHelloChat reply %d", k), reply, expectGreeting+" "+name, int32(k))
	}
	if err := stream.CloseSend(); err != nil {
		ck.errorf("SayHelloChat CloseSend: %v", err)
	}
	extra := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			ck.errorf("SayHelloChat after half-close ended with %s, want OK", rpcStatus(err))
			break
		}
		extra++
	}
	if extra > 0 {
		ck.errorf("SayHelloChat sent %d replies after half-close, want 0", extra)
	}
	return ck.err()
}

// checkReply checks the message text (byte for byte) and index of one reply.
func checkReply(ck *checks, call string, reply *helloworld.HelloReply, message string, index int32) {
	if got := reply.GetMessage(); got != message {
		ck.errorf("%s message = %q, want %q", call, got, message)
	}
	if got := reply.GetIndex(); got != index {
		ck.errorf("%s index = %d, want %d", call, got, index)
	}
}
