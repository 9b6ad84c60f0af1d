# The "go-official" image: grpc-go's own interop server and client, the
# reference peers of the matrix, built from the Go module proxy at the grpc-go
# version go/go.mod pins (scripts/go-official.sh does the same natively).
#
# Unlike the other images, the runtime keeps a shell (it is the Go image
# itself): the official binaries speak no readiness or result lines, so
# compose checks the server's port with bash and plays the client case by
# case with a small sh loop (docker-compose.yml).
#
# Build context: the repository root.
#   docker build -f go/official.Dockerfile -t polyglot-grpc-interop/go-official:latest .
# Where no image registry can be reached, build from a local stand-in made by
# scripts/docker-base-images.sh:
#   docker build --build-arg GO_IMAGE=interop-local/golang:1.26-bookworm ...
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
WORKDIR /src
# Only go.mod: the version to build is the one the project pins.
COPY go/go.mod ./
RUN version="$(sed -n 's/^[[:space:]]*google\.golang\.org\/grpc[[:space:]]\+\(v[^[:space:]]*\).*/\1/p' go.mod | head -n 1)" \
    && test -n "$version" \
    && mkdir -p /out/usr/local/bin \
    && GOBIN=/tmp/bin go install -ldflags='-s -w' \
        "google.golang.org/grpc/interop/client@$version" \
        "google.golang.org/grpc/interop/server@$version" \
    && mv /tmp/bin/client /out/usr/local/bin/official-client \
    && mv /tmp/bin/server /out/usr/local/bin/official-server

FROM ${GO_IMAGE}
# The project's test certificate, which the server serves with TLS in a container.
COPY testdata/tls /app/testdata/tls
COPY --from=build /out /
WORKDIR /app
EXPOSE 8080
# Healthy once it accepts connections: it serves no grpc.health.v1.
HEALTHCHECK --interval=2s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
CMD ["/usr/local/bin/official-server", "--port=8080"]
