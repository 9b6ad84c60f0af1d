package interop

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// HealthCheckDeadline bounds a whole health check (connect, TLS handshake
// and call). Docker runs the check every couple of seconds; a server that
// cannot answer within this is reported unhealthy rather than left to pile
// up checks.
const HealthCheckDeadline = 2 * time.Second

// CheckHealth calls grpc.health.v1.Health/Check for the overall status
// (service "") of the server at target, with grpc-go's health client, within
// HealthCheckDeadline. It returns the status the server reported, or an
// error saying why none came back.
func CheckHealth(ctx context.Context, target string, creds credentials.TransportCredentials) (healthpb.HealthCheckResponse_ServingStatus, error) {
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, fmt.Errorf("channel to %s: %w", target, err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(ctx, HealthCheckDeadline)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		st := status.Convert(err)
		return healthpb.HealthCheckResponse_UNKNOWN, fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return resp.GetStatus(), nil
}
