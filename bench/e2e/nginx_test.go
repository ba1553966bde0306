package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// nginxBin is Debian's nginx (package nginx-light).
const nginxBin = "/usr/sbin/nginx"

// nginxConfig is the configuration of a foreground, single-process nginx
// with everything in dir: it serves dir/www on 127.0.0.1:8080 behind
// handoffd, reading a PROXY header (v1 or v2) at the start of every
// connection, and logs each request with the header's addresses, the
// client address nginx uses ($remote_addr, from the header by realip),
// the request, status and body size.
const nginxConfig = `daemon off;
master_process off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log info;
events { worker_connections 64; }
http {
	log_format proxied '$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port '
		'$remote_addr "$request" $status $body_bytes_sent';
	access_log {{dir}}/access.log proxied;
	client_body_temp_path {{dir}}/body;
	proxy_temp_path {{dir}}/proxy;
	fastcgi_temp_path {{dir}}/fastcgi;
	uwsgi_temp_path {{dir}}/uwsgi;
	scgi_temp_path {{dir}}/scgi;
	default_type application/octet-stream;
	set_real_ip_from 127.0.0.1;
	real_ip_header proxy_protocol;
	server {
		listen 127.0.0.1:8080 proxy_protocol;
		root {{dir}}/www;
	}
}
`

// TestNginxProxyProtocol runs Debian's nginx as be2's upstream server,
// behind handoffd sending a PROXY header of version 2, then 1, on every
// connection: the bodies through the VIP are nginx's files byte for byte,
// on one keep-alive connection and on connections of their own, and
// nginx's access log has, for every request, the client's address and
// port (not 127.0.0.1, handoffd's) and the VIP's.
func TestNginxProxyProtocol(t *testing.T) {
	needRoot(t, "ip", "curl", nginxBin)
	files := map[string][]byte{
		"hello":     []byte("nginx hello\n"), // the site's readiness check asks for /hello
		"small.txt": []byte("small from nginx\n"),
		"1m.bin":    make([]byte, mib),
	}
	rand.Read(files["1m.bin"])
	for _, version := range []int{2, 1} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			ngx := t.TempDir()
			if err := benchsite.WriteFiles(filepath.Join(ngx, "www"), files); err != nil {
				t.Fatal(err)
			}
			config := filepath.Join(ngx, "nginx.conf")
			writeFile(t, config, strings.ReplaceAll(nginxConfig, "{{dir}}", ngx))
			www1 := t.TempDir() // be1's, with the /static/ of the readiness check
			writeFile(t, filepath.Join(www1, "static", "small.txt"), smallBody)
			s := startSiteConfig(t, benchsite.Config{
				Static1: www1, Upstream: []string{nginxBin, "-c", config},
				ProxyProtocol: version, Offloads: true, Shards: 2,
			})
			out := t.TempDir()
			var want []string // access log lines
			// fetch GETs paths on one connection and checks the bodies.
			fetch := func(paths ...string) {
				t.Helper()
				args := []string{"-w", "%{local_port} %{num_connects}\n"}
				for i, p := range paths {
					args = append(args, "-o", filepath.Join(out, fmt.Sprint(i)), vipURL+"/"+p)
				}
				transfers := strings.Split(strings.TrimSuffix(s.curl(args...), "\n"), "\n")
				if len(transfers) != len(paths) {
					t.Fatalf("curl %v: %d transfers, want %d", paths, len(transfers), len(paths))
				}
				port := strings.Fields(transfers[0])[0]
				for i, p := range paths {
					got, err := os.ReadFile(filepath.Join(out, fmt.Sprint(i)))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, files[p]) {
						t.Errorf("/%s: %d bytes that are not nginx's %d", p, len(got), len(files[p]))
					}
					connects := 0 // the connection is reused
					if i == 0 {
						connects = 1
					}
					if tr := fmt.Sprintf("%s %d", port, connects); transfers[i] != tr {
						t.Errorf("transfer %d of %v: %q, want %q (local port, new connections)", i, paths, transfers[i], tr)
					}
					want = append(want, fmt.Sprintf("%s:%s %s:80 %s \"GET /%s HTTP/1.1\" 200 %d",
						testbed.ClientIP, port, testbed.VIP, testbed.ClientIP, p, len(files[p])))
				}
			}
			fetch("small.txt", "1m.bin", "small.txt")
			fetch("1m.bin")
			fetch("small.txt")

			got := waitAccessLog(t, filepath.Join(ngx, "access.log"), len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("nginx access log mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// waitAccessLog waits up to 2 s (nginx logs a request once it has sent the
// response) for n lines in nginx's access log besides the site's readiness
// checks (GET /hello), and returns them. Every line, the readiness checks'
// too, must show the client's address as the PROXY header's and nginx's
// client address.
func waitAccessLog(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if f := strings.Fields(line); len(f) < 3 || !strings.HasPrefix(f[0], testbed.ClientIP+":") || f[2] != testbed.ClientIP {
				t.Fatalf("access log line %q: not from the client %s", line, testbed.ClientIP)
			}
			if !strings.Contains(line, `"GET /hello `) {
				lines = append(lines, line)
			}
		}
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNginxTLS runs Debian's nginx as be2's upstream with TLS: the switch
// routes the VIP's port 443 by server name without decrypting, handoffd
// passes the bytes (a PROXY v2 header first) to nginx, which terminates
// TLS with its certificate, checked by curl; bodies byte-exact over one
// keep-alive connection, and nginx's access log has the client's address.
func TestNginxTLS(t *testing.T) {
	needRoot(t, "ip", "curl", nginxBin)
	certs := t.TempDir()
	writeCerts(t, certs, "b.example")
	files := map[string][]byte{"small.txt": []byte("small from nginx over TLS\n"), "1m.bin": make([]byte, mib)}
	rand.Read(files["1m.bin"])
	ngx := t.TempDir()
	if err := benchsite.WriteFiles(filepath.Join(ngx, "www"), files); err != nil {
		t.Fatal(err)
	}
	config := strings.ReplaceAll(nginxConfig, "{{dir}}", ngx)
	config = strings.Replace(config, "listen 127.0.0.1:8080 proxy_protocol;", "listen 127.0.0.1:8080 ssl proxy_protocol;\n\t\tssl_certificate "+
		filepath.Join(certs, "b.example.crt")+";\n\t\tssl_certificate_key "+filepath.Join(certs, "b.example.key")+";", 1)
	writeFile(t, filepath.Join(ngx, "nginx.conf"), config)
	www1 := t.TempDir()
	writeFile(t, filepath.Join(www1, "static", "small.txt"), smallBody)
	s := startSiteConfig(t, benchsite.Config{
		Static1: www1, Upstream: []string{nginxBin, "-c", filepath.Join(ngx, "nginx.conf")},
		ProxyProtocol: 2, Offloads: true, Shards: 2,
		SwitchKeys: "tls_ports = [443]\n",
		Rules:      "[[rule]]\nsni = \"b.example\"\npool = \"web\"\n",
		ReadyPaths: []string{"/static/"}, // be2 speaks TLS only
	})
	s.waitBackend("be2", true, 5*time.Second) // its agent's check of nginx runs every second
	out := t.TempDir()
	got, err := s.tb.Run("cli", "curl", "-sS", "-m", "20", "--http1.1", "--cacert", filepath.Join(certs, "ca.pem"),
		"--resolve", "b.example:443:"+testbed.VIP, "-w", "%{num_connects}\n",
		"-o", filepath.Join(out, "0"), "https://b.example/small.txt", "-o", filepath.Join(out, "1"), "https://b.example/1m.bin")
	if err != nil {
		t.Fatalf("curl: %v: %s", err, got)
	}
	if got != "1\n0\n" {
		t.Errorf("connections per transfer %q, want one for both (keep-alive)", got)
	}
	for i, name := range []string{"small.txt", "1m.bin"} {
		body, err := os.ReadFile(filepath.Join(out, fmt.Sprint(i)))
		if err != nil || !bytes.Equal(body, files[name]) {
			t.Errorf("https://b.example/%s: %d bytes, %v; want nginx's %d", name, len(body), err, len(files[name]))
		}
	}
	lines := waitAccessLog(t, filepath.Join(ngx, "access.log"), 2)
	if len(lines) != 2 || !strings.Contains(lines[0], `"GET /small.txt HTTP/1.1" 200`) || !strings.Contains(lines[1], testbed.VIP+":443 ") {
		t.Errorf("nginx access log %q, want both requests from the client to the VIP's port 443", lines)
	}
}
