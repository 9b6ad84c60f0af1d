package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	greeterAllNames = []string{"alice", "bob", "carol"}
	// greeterChatNames get a random token appended for each call.
	greeterChatNames = []string{"alice", "bob", "carol", "dave"}
)

// chatToken returns the token greeter_bidi_streaming appends to its names:
// 8 lowercase hex digits, drawn anew for each call, so that a server can
// only answer a name it has received.
func chatToken() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}

// rpcStatus describes the status carried by err, for failure messages.
func rpcStatus(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("status %s %q", st.Code(), st.Message())
}

// DoGreeterUnary calls SayHello and checks the reply text and index 0.
func DoGreeterUnary(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	reply, err := c.Greeter.SayHello(ctx, &helloworld.HelloRequest{Name: greeterName})
	if !ck.check("status", err == nil, "SayHello(name=%q) ended with %s, want OK", greeterName, rpcStatus(err)) {
		return
	}
	checkReply(ck, "SayHello", reply, expectGreeting+" "+greeterName, 0)
}

// DoGreeterServerStreaming calls SayHelloStream for 5 replies and checks
// each reply's text and index, in order, and that no sixth one comes.
func DoGreeterServerStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Greeter.SayHelloStream(ctx, &helloworld.HelloStreamRequest{Name: greeterName, Count: greeterCount})
	if err != nil {
		ck.fail("status", "SayHelloStream(count=%d) could not start: %s", greeterCount, rpcStatus(err))
		return
	}
	n := 0
	for {
		reply, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			ck.pass("status")
			break
		}
		if err != nil {
			ck.fail("status", "SayHelloStream(count=%d) ended with %s after %d replies, want OK", greeterCount, rpcStatus(err), n)
			break
		}
		n++
		if n <= greeterCount {
			want := fmt.Sprintf("%s %s (%d of %d)", expectGreeting, greeterName, n, greeterCount)
			checkReply(ck, fmt.Sprintf("SayHelloStream reply %d", n), reply, want, int32(n))
		}
	}
	ck.check("reply_count", n == greeterCount, "SayHelloStream(count=%d) sent %d replies, want %d", greeterCount, n, greeterCount)
}

// DoGreeterClientStreaming streams three names to SayHelloToAll and checks
// the one reply that joins them.
func DoGreeterClientStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	stream, err := c.Greeter.SayHelloToAll(ctx)
	if err != nil {
		ck.fail("status", "SayHelloToAll could not start: %s", rpcStatus(err))
		return
	}
	for _, name := range greeterAllNames {
		// A failed Send means the server ended the call; CloseAndRecv
		// below reports its status.
		if err := stream.Send(&helloworld.HelloRequest{Name: name}); err != nil {
			break
		}
	}
	reply, err := stream.CloseAndRecv()
	if !ck.check("status", err == nil, "SayHelloToAll ended with %s, want OK", rpcStatus(err)) {
		return
	}
	want := expectGreeting + " " + strings.Join(greeterAllNames, ", ")
	checkReply(ck, "SayHelloToAll", reply, want, int32(len(greeterAllNames)))
}

// DoGreeterBidiStreaming sends four names to SayHelloChat, each only after
// the reply to the previous one came back, which proves that the server
// answers before the client half-closes. Every name carries a token drawn
// for this call, which the reply must echo: a server cannot answer a name
// before it arrived.
func DoGreeterBidiStreaming(ctx context.Context, c *Clients, ck *Checks) {
	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	token := chatToken()
	stream, err := c.Greeter.SayHelloChat(ctx)
	if err != nil {
		ck.fail("status", "SayHelloChat could not start: %s", rpcStatus(err))
		return
	}
	for i, base := range greeterChatNames {
		k := i + 1
		name := base + " " + token
		if err := stream.Send(&helloworld.HelloRequest{Name: name}); err != nil {
			_, err := stream.Recv()
			ck.fail("status", "SayHelloChat send of name %d (%q) failed; the call ended with %s", k, name, rpcStatus(err))
			return
		}
		reply, err := stream.Recv()
		if err != nil {
			// A deadline here most likely means the server waited for
			// half-close before answering.
			ck.fail("status", "SayHelloChat reply %d: stream ended with %s, want a reply before name %d is sent", k, rpcStatus(err), k+1)
			return
		}
		checkReply(ck, fmt.Sprintf("SayHelloChat reply %d", k), reply, expectGreeting+" "+name, int32(k))
	}
	if err := stream.CloseSend(); err != nil {
		ck.fail("status", "SayHelloChat CloseSend: %v", err)
	}
	extra := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			ck.pass("status")
			break
		}
		if err != nil {
			ck.fail("status", "SayHelloChat after half-close ended with %s, want OK", rpcStatus(err))
			break
		}
		extra++
	}
	ck.check("reply_count", extra == 0, "SayHelloChat sent %d replies after half-close, want 0", extra)
}

// checkReply checks the message text (byte for byte) and index of one reply.
func checkReply(ck *Checks, call string, reply *helloworld.HelloReply, message string, index int32) {
	got := reply.GetMessage()
	ck.check("message", got == message, "%s message = %q, want %q", call, got, message)
	gotIndex := reply.GetIndex()
	ck.check("index", gotIndex == index, "%s index = %d, want %d", call, gotIndex, index)
}
