package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// writeCerts makes a CA and, for each name, a certificate it signs; it
// writes ca.pem and NAME.crt, NAME.key into dir.
func writeCerts(t *testing.T, dir string, names ...string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "webswitch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	for i, name := range names {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		leaf := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+".key"), "PRIVATE KEY", keyDER)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPS sends HTTPS through the VIP's TLS port: the switch reads each
// ClientHello's server name without decrypting and hands a.example to be1
// and b.example to be2, whose agents terminate TLS with their own
// certificate, checked by curl against the test CA; bodies byte-exact over
// HTTP/1.1 and HTTP/2. Plain HTTP on the TLS port, and TLS on the HTTP
// port, are closed and counted.
func TestHTTPS(t *testing.T) {
	needRoot(t, "ip", "curl")
	certs := t.TempDir()
	writeCerts(t, certs, "a.example", "b.example")
	www1, www2 := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(www1, "who"), "be1 over TLS\n")
	writeFile(t, filepath.Join(www1, "static", "small.txt"), smallBody) // the site waits for /static/
	writeFile(t, filepath.Join(www2, "who"), "be2 over TLS\n")
	sum := randomFile(t, filepath.Join(www1, "big.bin"), 20*mib)
	tlsKeys := func(name string) string {
		return "tls_cert = \"" + filepath.Join(certs, name+".crt") + "\"\ntls_key = \"" + filepath.Join(certs, name+".key") + "\""
	}
	s := startSiteConfig(t, benchsite.Config{
		Static1: www1, Static2: www2, Shards: 2, Offloads: true,
		SwitchKeys: "tls_ports = [443]\n",
		Rules:      "[[rule]]\nsni = \"a.example\"\npool = \"static\"\n[[rule]]\nsni = \"*.b.example\"\npool = \"web\"\n",
		AgentKeys:  [2]string{tlsKeys("a.example"), tlsKeys("b.example")},
	})
	https := func(name, path string, args ...string) (string, error) {
		return s.tb.Run("cli", "curl", append([]string{"-sS", "-m", "20", "--cacert", filepath.Join(certs, "ca.pem"),
			"--resolve", name + ":443:" + testbed.VIP, "https://" + name + path}, args...)...)
	}
	for _, tt := range []struct{ name, proto, want string }{
		{"a.example", "--http1.1", "be1 over TLS\n"},
		{"a.example", "--http2", "be1 over TLS\n"},
	} {
		if got, err := https(tt.name, "/who", tt.proto); err != nil || got != tt.want {
			t.Errorf("https://%s/who %s: %q, %v; want %q", tt.name, tt.proto, got, err, tt.want)
		}
	}
	// The wildcard rule: x.b.example goes to be2, whose certificate is for
	// b.example only: curl must refuse it, which shows whose it is.
	if out, err := https("x.b.example", "/who"); err == nil || !strings.Contains(out, "b.example") && !strings.Contains(out, "certificate") {
		t.Errorf("https://x.b.example: %q, %v; want be2's certificate refused for the name", out, err)
	}
	if got, err := https("x.b.example", "/who", "-k"); err != nil || got != "be2 over TLS\n" {
		t.Errorf("https://x.b.example/who -k: %q, %v; want be2", got, err)
	}
	before := s.switchBytes()
	if out, err := s.tb.Run("cli", "sh", "-c", "curl -sS -m 30 --cacert "+filepath.Join(certs, "ca.pem")+
		" --resolve a.example:443:"+testbed.VIP+" https://a.example/big.bin | sha256sum"); err != nil || !strings.HasPrefix(out, sum) {
		t.Errorf("20 MiB over HTTPS: %q, %v; want sha256 %s", out, err, sum)
	}
	if through := s.switchBytes() - before; through > 2*mib {
		t.Errorf("%d bytes crossed the switch during a 20 MiB HTTPS download: the responses must bypass it", through)
	}

	// The wrong protocol for the port: closed, counted.
	if out, err := s.tb.Run("cli", "curl", "-sS", "-m", "5", "http://"+testbed.VIP+":443/who"); err == nil {
		t.Errorf("plain HTTP on the TLS port answered: %q", out)
	}
	if out, err := https("a.example", "/who", "--connect-to", "a.example:443:"+testbed.VIP+":80"); err == nil {
		t.Errorf("TLS on the HTTP port answered: %q", out)
	}
	var mismatch float64
	for _, c := range s.shardCounters() {
		v, _ := c["protocol_mismatch"].(float64)
		mismatch += v
	}
	if mismatch != 2 {
		t.Errorf("protocol mismatches counted %v, want 2", mismatch)
	}
}
