package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"webswitch/bench/testbed"
)

// The two-way proxies run in the switch's namespace, on its own address,
// each on its own port, in front of the agents' direct listeners.
const (
	DirectPort  = 8080 // the back-ends' plain listeners (serve.direct_listen)
	haproxyPort = 8081
	nginxPort   = 8082
)

// HAProxyConfig is HAProxy in HTTP mode, one thread, keep-alive on both
// sides with connection reuse towards the back-ends' direct listeners
// (DirectPort), listening on bind ("ADDR:PORT", or ":PORT" for every
// address), its PID file in dir. wsbench failover runs it too.
func HAProxyConfig(dir, bind string) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 4096
    pidfile %s/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind %s
    default_backend be
backend be
    balance roundrobin
%s`, dir, bind, upstreamLines("    server be%d %s:%d\n"))
}

// nginxConfig is nginx as a reverse proxy: one worker, HTTP/1.1 with a
// keep-alive pool to the back-ends, no access log.
func nginxConfig(dir string) string {
	return fmt.Sprintf(`user root;
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path %[1]s/nginx-tmp/body;
    proxy_temp_path %[1]s/nginx-tmp/proxy;
    fastcgi_temp_path %[1]s/nginx-tmp/fastcgi;
    uwsgi_temp_path %[1]s/nginx-tmp/uwsgi;
    scgi_temp_path %[1]s/nginx-tmp/scgi;
    keepalive_requests 1000000;
    upstream be {
%[2]s        keepalive 64;
    }
    server {
        listen %[3]s:%[4]d;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, upstreamLines("        server %[2]s:%[3]d;\n"), testbed.SwitchIP, nginxPort)
}

// upstreamLines formats one line per back-end with its index, address and
// direct port.
func upstreamLines(format string) string {
	var b strings.Builder
	for i := 1; i <= backends; i++ {
		fmt.Fprintf(&b, format, i, testbed.BackendIP(i), DirectPort)
	}
	return b.String()
}

// writeProxyConfigs writes haproxy.cfg and nginx.conf into dir.
func writeProxyConfigs(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
		return err
	}
	for name, content := range map[string]string{
		"haproxy.cfg": HAProxyConfig(dir, fmt.Sprintf("%s:%d", testbed.SwitchIP, haproxyPort)),
		"nginx.conf":  nginxConfig(dir),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
