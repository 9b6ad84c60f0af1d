package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	testingpb "polyglot-grpc-interop/go/gen/grpc/testing"
)

// tlsDir is the repository's testdata/tls, seen from go/interop.
var tlsDir = filepath.Join("..", "..", "testdata", "tls")

// testServerName is a name the test server certificate is for.
const testServerName = "foo.test.google.fr"

// serveCreds starts an interop server with creds on a loopback port for the
// test's life and returns its address.
func serveCreds(t *testing.T, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(DefaultGreeting, grpc.Creds(creds))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// serveTLS starts an interop server with the test certificate, requiring a
// client certificate of the CA clientCA when clientCA is not "".
func serveTLS(t *testing.T, clientCA string) string {
	t.Helper()
	st := ServerTLS{CertFile: filepath.Join(tlsDir, "server.pem"), KeyFile: filepath.Join(tlsDir, "server.key")}
	if clientCA != "" {
		st.RequireClientCert, st.ClientCAFile = true, clientCA
	}
	creds, err := st.Credentials()
	if err != nil {
		t.Fatalf("ServerTLS%+v.Credentials: %v", st, err)
	}
	return serveCreds(t, creds)
}

// testTLSCaseConfig loads the tls cases' files as the client does, from
// INTEROP_TLS_DIR set to the test files.
func testTLSCaseConfig(t *testing.T) *TLSCaseConfig {
	t.Helper()
	t.Setenv("INTEROP_TLS_DIR", tlsDir)
	dir := os.Getenv("INTEROP_TLS_DIR")
	cfg, err := LoadTLSCaseConfig(testServerName, TLSCaseFiles{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "client.pem"),
		KeyFile:  filepath.Join(dir, "client.key"),
		Dir:      dir,
	})
	if err != nil {
		t.Fatalf("LoadTLSCaseConfig: %v", err)
	}
	return cfg
}

// tlsCaseNamed returns the case of Cases called name, which must be a tls case.
func tlsCaseNamed(t *testing.T, name string) Case {
	t.Helper()
	c := caseNamed(t, name)
	if c.Group != GroupTLS {
		t.Fatalf("%s is of group %s, want tls", name, c.Group)
	}
	return c
}

// refusedMessage matches the message of a refusal case that got OK.
func refusedMessage(channel string) *regexp.Regexp {
	return regexp.MustCompile(`^EmptyCall over TLS ` + regexp.QuoteMeta(channel) + ` ended with status OK "", want status Unavailable$`)
}

// TestTLSCasesAgainstMutualTLSServer plays the tls cases as the runner
// does, against a server with --use_tls --require_client_cert: all pass,
// each refusal because grpc-go reported UNAVAILABLE.
func TestTLSCasesAgainstMutualTLSServer(t *testing.T) {
	cfg := testTLSCaseConfig(t)
	c := &Clients{Target: serveTLS(t, filepath.Join(tlsDir, "ca.pem")), TLS: cfg}
	for _, tc := range TLSCases {
		res := RunCase(t.Context(), c, tlsCaseNamed(t, tc.Name))
		want := map[string]string{tc.checkName(): CheckPassed}
		if res.Outcome != OutcomePassed || !maps.Equal(res.Checks, want) {
			t.Errorf("%s against a mutual TLS server = %s %q %v, want passed %v", tc.Name, res.Outcome, res.Message, res.Checks, want)
		}
	}
}

// TestTLSRefusalsCanFail plays each refusal against a server that does not
// refuse it: the case fails, saying it got OK.
func TestTLSRefusalsCanFail(t *testing.T) {
	cfg := testTLSCaseConfig(t)

	// A server that asks no client certificate accepts a client without
	// one, or with one of another CA.
	plain := &Clients{Target: serveTLS(t, ""), TLS: cfg}
	for _, name := range []string{"mtls_no_client_cert", "mtls_other_ca_client"} {
		tc := TLSCases[slicesIndex(t, name)]
		res := RunCase(t.Context(), plain, tlsCaseNamed(t, name))
		if res.Outcome != OutcomeFailed || !refusedMessage(tc.Channel).MatchString(res.Message) ||
			!maps.Equal(res.Checks, map[string]string{"status_code": CheckFailed}) {
			t.Errorf("%s against a TLS server without client certificates = %s %q %v, want failed: got OK, want Unavailable", name, res.Outcome, res.Message, res.Checks)
		}
	}
	// The other refusals pass there too: the client refuses the server.
	for _, name := range []string{"mtls_accepted", "tls_untrusted_server", "tls_wrong_name"} {
		if res := RunCase(t.Context(), plain, tlsCaseNamed(t, name)); res.Outcome != OutcomePassed {
			t.Errorf("%s against a TLS server without client certificates = %s %q, want passed", name, res.Outcome, res.Message)
		}
	}

	// A server whose certificate is for wrong.name.invalid, signed by the
	// CA the case trusts as "other": neither client refusal refuses it.
	pki := newTestPKI(t, wrongServerName, testServerName)
	trusting := *cfg
	trusting.OtherRoots = pki.roots
	trusting.Roots = pki.roots
	lenient := &Clients{Target: serveCreds(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pki.server}})), TLS: &trusting}
	for _, name := range []string{"tls_untrusted_server", "tls_wrong_name"} {
		tc := TLSCases[slicesIndex(t, name)]
		res := RunCase(t.Context(), lenient, tlsCaseNamed(t, name))
		if res.Outcome != OutcomeFailed || !refusedMessage(tc.Channel).MatchString(res.Message) {
			t.Errorf("%s against a server it should accept = %s %q, want failed: got OK, want Unavailable", name, res.Outcome, res.Message)
		}
	}
}

// TestMTLSAcceptedCanFail plays mtls_accepted against a server that wants
// client certificates of another CA: refused, so the case fails with what
// grpc-go reported.
func TestMTLSAcceptedCanFail(t *testing.T) {
	cfg := testTLSCaseConfig(t)
	c := &Clients{Target: serveTLS(t, filepath.Join(tlsDir, "other-ca.pem")), TLS: cfg}
	res := RunCase(t.Context(), c, tlsCaseNamed(t, "mtls_accepted"))
	message := regexp.MustCompile(`^EmptyCall over TLS with the right CA, name and client certificate ended with status Unavailable ".+", want OK$`)
	if res.Outcome != OutcomeFailed || !message.MatchString(res.Message) || !maps.Equal(res.Checks, map[string]string{"status": CheckFailed}) {
		t.Errorf("mtls_accepted against a server wanting another CA = %s %q %v, want failed %s", res.Outcome, res.Message, res.Checks, message)
	}

	// Without its configuration a tls case fails, saying why.
	res = RunCase(t.Context(), &Clients{Target: c.Target}, tlsCaseNamed(t, "mtls_accepted"))
	if res.Outcome != OutcomeFailed || res.Message != "mtls_accepted: no TLS configuration or target for the tls cases (Clients.TLS, Clients.Target)" {
		t.Errorf("mtls_accepted without Clients.TLS = %s %q, want failed", res.Outcome, res.Message)
	}
}

// TestLoadTLSCaseConfigErrors checks that missing files are reported.
func TestLoadTLSCaseConfigErrors(t *testing.T) {
	good := TLSCaseFiles{
		CAFile:   filepath.Join(tlsDir, "ca.pem"),
		CertFile: filepath.Join(tlsDir, "client.pem"),
		KeyFile:  filepath.Join(tlsDir, "client.key"),
		Dir:      tlsDir,
	}
	if _, err := LoadTLSCaseConfig(testServerName, good); err != nil {
		t.Fatalf("LoadTLSCaseConfig(test files) = %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(*TLSCaseFiles)
		want   string
	}{
		{"no dir", func(f *TLSCaseFiles) { f.Dir = "" }, "INTEROP_TLS_DIR"},
		{"dir without other-*", func(f *TLSCaseFiles) { f.Dir = t.TempDir() }, "other-ca.pem"},
		{"no CA", func(f *TLSCaseFiles) { f.CAFile = filepath.Join(t.TempDir(), "none.pem") }, "none.pem"},
		{"key of another certificate", func(f *TLSCaseFiles) { f.KeyFile = filepath.Join(tlsDir, "other-client.key") }, "client.pem"},
	} {
		files := good
		tt.change(&files)
		if _, err := LoadTLSCaseConfig(testServerName, files); err == nil || !regexp.MustCompile(regexp.QuoteMeta(tt.want)).MatchString(err.Error()) {
			t.Errorf("LoadTLSCaseConfig(%s) = %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}

// TestServerTLSRequiresClientCert checks the server side of mutual TLS
// with plain grpc-go calls: with RequireClientCert a client without a
// certificate, or with one of another CA, is refused; without it, not.
func TestServerTLSRequiresClientCert(t *testing.T) {
	cfg := testTLSCaseConfig(t)
	mtls := serveTLS(t, filepath.Join(tlsDir, "ca.pem"))
	plain := serveTLS(t, "")
	for _, tt := range []struct {
		name   string
		target string
		certs  []tls.Certificate
		ok     bool
	}{
		{"mutual TLS, client certificate of the CA", mtls, []tls.Certificate{cfg.Cert}, true},
		{"mutual TLS, no client certificate", mtls, nil, false},
		{"mutual TLS, client certificate of another CA", mtls, []tls.Certificate{cfg.OtherCert}, false},
		{"TLS, no client certificate", plain, nil, true},
	} {
		creds := credentials.NewTLS(&tls.Config{RootCAs: cfg.Roots, ServerName: testServerName, Certificates: tt.certs})
		conn, c, err := NewChannel(tt.target, append(DialOptions(), grpc.WithTransportCredentials(creds))...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Test.EmptyCall(t.Context(), &testingpb.Empty{})
		_ = conn.Close()
		if (err == nil) != tt.ok {
			t.Errorf("%s: EmptyCall = %s, want OK %t", tt.name, rpcStatus(err), tt.ok)
		}
	}

	if _, err := (ServerTLS{CertFile: filepath.Join(tlsDir, "server.pem"), KeyFile: filepath.Join(tlsDir, "server.key"), RequireClientCert: true}).Credentials(); err == nil {
		t.Error("ServerTLS with RequireClientCert and no ClientCAFile: no error, want one")
	}
	if _, err := (ServerTLS{CertFile: filepath.Join(tlsDir, "server.pem"), KeyFile: filepath.Join(tlsDir, "server.key"), RequireClientCert: true, ClientCAFile: filepath.Join(tlsDir, "server.key")}).Credentials(); err == nil {
		t.Error("ServerTLS with a ClientCAFile holding no certificate: no error, want one")
	}
}

// slicesIndex returns the index of the tls case name in TLSCases.
func slicesIndex(t *testing.T, name string) int {
	t.Helper()
	for i, tc := range TLSCases {
		if tc.Name == name {
			return i
		}
	}
	t.Fatalf("no tls case %s", name)
	return -1
}

// testPKI is a CA made for one test and a server certificate it signed.
type testPKI struct {
	roots  *x509.CertPool
	server tls.Certificate
}

// newTestPKI makes a CA and a server certificate for names (and 127.0.0.1).
func newTestPKI(t *testing.T, names ...string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "a CA of one test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return testPKI{roots: roots, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}
