package serve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// selfSigned returns a certificate for names and a pool that trusts it.
func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// TestTLSListener serves TLS and plain HTTP clients from one listener of
// handed-off connections: each gets the file byte for byte, the TLS one
// with the certificate checked for its name.
func TestTLSListener(t *testing.T) {
	root := t.TempDir()
	body := randomBytes(200 << 10)
	os.WriteFile(filepath.Join(root, "f"), body, 0o644)
	l, addr := frontListener(t)
	cert, pool := selfSigned(t, "a.example")
	tl := NewTLSListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	serveInBackground(t, l, func(net.Listener) error { return newStatic(t, root).Serve(tl) })

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.example"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, url := range []string{"https://" + addr + "/f", "http://" + addr + "/f"} {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != string(body) {
			t.Errorf("GET %s: %d bytes, %v; want the file", url, len(got), err)
		}
		if url[:5] == "https" && (resp.TLS == nil || resp.ProtoMajor != 2) {
			t.Errorf("GET %s: TLS %v, protocol %s; want TLS and HTTP/2 by ALPN", url, resp.TLS != nil, resp.Proto)
		}
	}
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "b.example"}}, Timeout: 10 * time.Second}
	if _, err := other.Get("https://" + addr + "/f"); err == nil {
		t.Error("a client expecting b.example accepted the certificate of a.example")
	}
}
