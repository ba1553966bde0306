package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	benchsite "webswitch/bench/site"
	"webswitch/bench/testbed"
)

// TestHTTPAgent runs the example agent cmd/httpagent as be2's agent instead
// of handoffd: through the VIP it answers from its own net/http server,
// which sees the client's real address and port, on one keep-alive
// connection and on a new one.
func TestHTTPAgent(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	s := startSiteConfig(t, benchsite.Config{
		Static1: www, Static2: www, // be2's static_root only makes its file valid
		Agent2:   []string{filepath.Join(buildBinaries(t), "httpagent")},
		Offloads: true, Shards: 2,
	})
	for _, paths := range [][]string{{"/a", "/b/c?d=e"}, {"/"}} {
		args := []string{"-w", "%{local_port} %{num_connects}\n"}
		for _, p := range paths {
			args = append(args, vipURL+p)
		}
		// Each transfer prints the body, then the -w line; the port is
		// the first transfer's.
		out := s.curl(args...)
		port := ""
		if lines := strings.Split(out, "\n"); len(lines) > 1 {
			port, _, _ = strings.Cut(lines[1], " ")
		}
		var want strings.Builder
		for i := range paths {
			connects := 0 // the connection is reused
			if i == 0 {
				connects = 1
			}
			fmt.Fprintf(&want, "hello from httpagent, you are %s:%s\n%s %d\n", testbed.ClientIP, port, port, connects)
		}
		if out != want.String() {
			t.Errorf("GET %v:\n%s\nwant (one connection, the client's address and port):\n%s", paths, out, want.String())
		}
	}
	if got := s.curl(vipURL + "/static/small.txt"); got != smallBody {
		t.Errorf("/static/small.txt = %q, want be1's %q", got, smallBody)
	}
}
