package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// Files of $INTEROP_TLS_DIR that the tls cases read besides the ones the
// client's flags name (CONTRACT.md, "TLS test files").
const (
	otherCAFile         = "other-ca.pem"
	otherClientCertFile = "other-client.pem"
	otherClientKeyFile  = "other-client.key"
)

// wrongServerName is the name tls_wrong_name verifies, which no
// certificate of the test files is for.
const wrongServerName = "wrong.name.invalid"

// LoadCertPool returns a pool of the PEM certificates in the file path.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// LoadKeyPair loads a certificate chain and its key, naming both files in
// the error.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// ServerTLS is what a server's TLS flags say.
type ServerTLS struct {
	CertFile, KeyFile string // --tls_cert_file, --tls_key_file
	// RequireClientCert asks for mutual TLS (--require_client_cert): the
	// handshake requires a client certificate that chains to ClientCAFile.
	RequireClientCert bool
	ClientCAFile      string // --client_ca_file
}

// Credentials returns the server's TLS credentials: its certificate and,
// with RequireClientCert, tls.RequireAndVerifyClientCert against the CA of
// ClientCAFile, so that a client without a certificate, or with one of
// another CA, fails the handshake.
func (s ServerTLS) Credentials() (credentials.TransportCredentials, error) {
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, errors.New("--use_tls needs --tls_cert_file and --tls_key_file (or INTEROP_TLS_DIR)")
	}
	cert, err := LoadKeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if s.RequireClientCert {
		if s.ClientCAFile == "" {
			return nil, errors.New("--require_client_cert needs --client_ca_file (or INTEROP_TLS_DIR)")
		}
		pool, err := LoadCertPool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}

// TLSCaseFiles names the files the tls cases read.
type TLSCaseFiles struct {
	CAFile            string // --ca_file: the CA that signed the server's certificate
	CertFile, KeyFile string // --client_cert_file, --client_key_file
	// Dir is $INTEROP_TLS_DIR, which holds other-ca.pem, other-client.pem
	// and other-client.key.
	Dir string
}

// TLSCaseConfig is what the tls cases make their channels from: the
// channel of mtls_accepted (Roots, ServerName, Cert), which each refusal
// changes in one thing.
type TLSCaseConfig struct {
	ServerName string         // --server_host_override
	Roots      *x509.CertPool // the CA of --ca_file
	Cert       tls.Certificate
	OtherRoots *x509.CertPool // other-ca.pem, which signed nothing a server presents
	OtherCert  tls.Certificate
}

// LoadTLSCaseConfig reads the files of the tls cases; serverName is the
// name they verify.
func LoadTLSCaseConfig(serverName string, files TLSCaseFiles) (*TLSCaseConfig, error) {
	switch {
	case files.Dir == "":
		return nil, errors.New("the tls cases need INTEROP_TLS_DIR (for other-ca.pem, other-client.pem, other-client.key)")
	case files.CAFile == "":
		return nil, errors.New("the tls cases need --ca_file (or INTEROP_TLS_DIR)")
	case files.CertFile == "" || files.KeyFile == "":
		return nil, errors.New("the tls cases need --client_cert_file and --client_key_file (or INTEROP_TLS_DIR)")
	}
	var (
		cfg  = &TLSCaseConfig{ServerName: serverName}
		errs []error
		err  error
	)
	cfg.Roots, err = LoadCertPool(files.CAFile)
	errs = append(errs, err)
	cfg.Cert, err = LoadKeyPair(files.CertFile, files.KeyFile)
	errs = append(errs, err)
	cfg.OtherRoots, err = LoadCertPool(filepath.Join(files.Dir, otherCAFile))
	errs = append(errs, err)
	cfg.OtherCert, err = LoadKeyPair(filepath.Join(files.Dir, otherClientCertFile), filepath.Join(files.Dir, otherClientKeyFile))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// TLSCase is one row of the contract's tls table: a TLS channel of its own,
// made from TLSCaseConfig as Adjust says, for one EmptyCall.
type TLSCase struct {
	Name string
	// Channel says what is special about the channel, for messages.
	Channel string
	// Adjust changes the channel of mtls_accepted into the case's.
	Adjust func(tc *TLSCaseConfig, cfg *tls.Config)
	// Code is the status EmptyCall must end with: OK (check status) for
	// mtls_accepted, UNAVAILABLE (check status_code) for a refusal.
	Code codes.Code
}

// checkName is the check the case's call answers.
func (tc TLSCase) checkName() string {
	if tc.Code == codes.OK {
		return "status"
	}
	return "status_code"
}

// TLSCases is the contract's tls table, in its order. A refused handshake
// is a connection that never became usable: UNAVAILABLE.
var TLSCases = []TLSCase{
	{"mtls_accepted", "with the right CA, name and client certificate",
		func(*TLSCaseConfig, *tls.Config) {}, codes.OK},
	{"tls_untrusted_server", "trusting only " + otherCAFile,
		func(tc *TLSCaseConfig, cfg *tls.Config) { cfg.RootCAs = tc.OtherRoots }, codes.Unavailable},
	{"tls_wrong_name", "verifying the name " + wrongServerName,
		func(_ *TLSCaseConfig, cfg *tls.Config) { cfg.ServerName = wrongServerName }, codes.Unavailable},
	{"mtls_no_client_cert", "presenting no client certificate",
		func(_ *TLSCaseConfig, cfg *tls.Config) { cfg.Certificates = nil }, codes.Unavailable},
	{"mtls_other_ca_client", "presenting " + otherClientCertFile + " (signed by another CA)",
		func(tc *TLSCaseConfig, cfg *tls.Config) { cfg.Certificates = []tls.Certificate{tc.OtherCert} }, codes.Unavailable},
}

// tlsCaseList turns TLSCases into cases, each running DoTLSCase.
func tlsCaseList() []Case {
	out := make([]Case, len(TLSCases))
	for i, tc := range TLSCases {
		out[i] = Case{tc.Name, GroupTLS, []string{tc.checkName()}, func(ctx context.Context, c *Clients, ck *Checks) {
			DoTLSCase(ctx, c, ck, tc)
		}}
	}
	return out
}

// DoTLSCase makes the TLS channel of tc to c.Target, whatever --use_tls
// says, calls EmptyCall on it and checks the status that came back; the
// channel is closed after.
func DoTLSCase(ctx context.Context, c *Clients, ck *Checks, tc TLSCase) {
	if c.TLS == nil || c.Target == "" {
		ck.failCase(tc.Name + ": no TLS configuration or target for the tls cases (Clients.TLS, Clients.Target)")
		return
	}
	cfg := &tls.Config{
		RootCAs:      c.TLS.Roots,
		ServerName:   c.TLS.ServerName,
		Certificates: []tls.Certificate{c.TLS.Cert},
	}
	tc.Adjust(c.TLS, cfg)
	cc, err := grpc.NewClient(c.Target, append(DialOptions(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))...)
	if err != nil {
		ck.failCase(fmt.Sprintf("%s: new channel: %v", tc.Name, err))
		return
	}
	defer func() { _ = cc.Close() }()

	ctx, cancel := ck.withTimeout(ctx, RPCTimeout)
	defer cancel()
	call := "EmptyCall over TLS " + tc.Channel
	_, err = testingpb.NewTestServiceClient(cc).EmptyCall(ctx, &testingpb.Empty{})
	if tc.Code == codes.OK {
		ck.check("status", err == nil, "%s ended with %s, want OK", call, rpcStatus(err))
		return
	}
	checkStatus(ck, "", call, err, tc.Code, nil)
}
