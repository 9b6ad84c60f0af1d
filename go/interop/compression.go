package interop

import (
	"context"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/stats"
)

// grpc-go has no API that says whether one message arrived compressed: the
// flag byte of the gRPC message frame is read and dropped inside the library.
// What it does expose is stats.InPayload, handed to a stats.Handler for every
// message right after it was decoded and before RecvMsg returns it, on the
// goroutine that called RecvMsg. InPayload carries Length (the decoded size)
// and CompressedLength (the size on the wire). For a message sent without
// compression both are the length of one and the same buffer, so they are
// equal; for a gzip-compressed message CompressedLength is the gzip size,
// which differs from the decoded size unless gzip happens to produce exactly
// as many bytes as it was given, which it never does for the compressible
// all-zero payloads of the interop cases. A message can also only be
// compressed when the call's grpc-encoding names a compressor (grpc-go rejects
// a compressed message on a call without one), which is checked too.

// messageCompressed tells from one payload event whether its message was compressed.
func messageCompressed(callEncoding string, length, compressedLength int) bool {
	if callEncoding == "" || callEncoding == encoding.Identity {
		return false
	}
	return length != compressedLength
}

// callRecord collects, for one RPC, whether each message was compressed.
type callRecord struct {
	mu       sync.Mutex
	encoding string // grpc-encoding of the messages received
	in       []bool // one entry per message received, in order
	out      []bool // one entry per message sent, in order
}

func (r *callRecord) setEncoding(enc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.encoding = enc
}

func (r *callRecord) inEncoding() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.encoding
}

func (r *callRecord) addIn(length, compressedLength int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.in = append(r.in, messageCompressed(r.encoding, length, compressedLength))
}

func (r *callRecord) addOut(length, compressedLength int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The sender knows it compressed a message when the size changed; the
	// call's encoding is not needed for that.
	r.out = append(r.out, length != compressedLength)
}

// lastIn reports whether the most recently received message was compressed;
// ok is false when no message was recorded.
func (r *callRecord) lastIn() (compressed, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.in) == 0 {
		return false, false
	}
	return r.in[len(r.in)-1], true
}

func (r *callRecord) received() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.in...)
}

func (r *callRecord) sent() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.out...)
}

type callRecordKey struct{}

func withCallRecord(ctx context.Context) (context.Context, *callRecord) {
	r := &callRecord{}
	return context.WithValue(ctx, callRecordKey{}, r), r
}

func callRecordFrom(ctx context.Context) *callRecord {
	r, _ := ctx.Value(callRecordKey{}).(*callRecord)
	return r
}

// compressionStats is a stats.Handler that fills the callRecord found in an
// RPC's context. On the server it puts a fresh record into every RPC's
// context (TagRPC); on the client the case code puts one into the context of
// the calls it wants to observe, and calls without one are ignored.
type compressionStats struct {
	server bool
}

func (h compressionStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	if h.server {
		ctx, _ = withCallRecord(ctx)
	}
	return ctx
}

func (compressionStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	r := callRecordFrom(ctx)
	if r == nil {
		return
	}
	switch s := s.(type) {
	case *stats.InHeader:
		r.setEncoding(s.Compression)
	case *stats.InPayload:
		r.addIn(s.Length, s.CompressedLength)
	case *stats.OutPayload:
		r.addOut(s.Length, s.CompressedLength)
	}
}

func (compressionStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (compressionStats) HandleConn(context.Context, stats.ConnStats) {}
