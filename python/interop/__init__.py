"""The Python (grpcio) implementation of the cross-language gRPC interop harness.

`interop.server` serves helloworld.Greeter, grpc.testing.TestService, health and
reflection; `interop.cases` holds one function per client case; `interop.channels`
makes the client's channels (plaintext, TLS, mutual TLS); `interop.client` is the
client command line. python/interop_server.py and python/interop_client.py
are thin entry points over them. The contract is implementations/CONTRACT.md.

Nothing is imported here so that `import interop.client` stays lean: the client
starts once per server pairing.
"""
