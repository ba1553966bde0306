package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"webswitch/l7"
)

var cmpAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

func loadSwitch(path string) (any, error) { return LoadSwitch(path) }
func loadAgent(path string) (any, error)  { return LoadAgent(path) }

// TestLoadErrors loads one broken file per kind of error from testdata/bad;
// each file's first line says what is wrong with it.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		load func(string) (any, error)
		line int
		key  string
		msg  string // a part of the message
	}{
		// Syntax errors, with the parser's message.
		{"syntax", loadSwitch, 4, "switch.vip", "Invalid float value"},
		{"syntax-string", loadSwitch, 22, "backend[2].address", "strings cannot contain newlines"},
		{"syntax-duplicate-key", loadSwitch, 19, "backend[1].name", "already been defined"},
		{"agent-syntax", loadAgent, 7, "serve", "to end table name"},
		// Strict decoding.
		{"unknown-key", loadSwitch, 19, "backend[1].priority", "unknown key"},
		{"unknown-key-case", loadSwitch, 4, "switch.VIP", "unknown key"},
		{"unknown-table", loadSwitch, 40, "metrics", "unknown key"},
		{"agent-unknown-key", loadAgent, 9, "serve.index", "unknown key"},
		{"inline-table", loadSwitch, 2, "rule[1].weight", "unknown key"},
		{"wrong-type", loadSwitch, 6, "switch.shards", "expected an integer, found a string"},
		{"wrong-type-array", loadSwitch, 31, "pool[1].backends", "expected an array, found a string"},
		{"wrong-type-element", loadSwitch, 5, "switch.ports[1]", "expected an integer, found a string"},
		{"wrong-type-table", loadSwitch, 2, "control", "expected a table, found a string"},
		{"duration-integer", loadSwitch, 9, "control.connect_timeout", "expected a string, found an integer"},
		{"bad-duration", loadSwitch, 6, "switch.request_timeout", `invalid duration "10"`},
		{"bad-ip", loadSwitch, 22, "backend[2].address", `"198.18.0.256" is not an IP address`},
		{"bad-agent", loadSwitch, 18, "backend[1].agent", `"198.18.0.21" is not an IP address and port`},
		{"agent-listen", loadAgent, 3, "agent.listen", `"198.18.0.21" is not an IP address and port`},
		{"out-of-range-port", loadSwitch, 5, "switch.ports[1]", "70000 is out of range"},
		// Missing keys are reported at their table's line, if any.
		{"missing-required", loadSwitch, 15, "backend[1].address", "required"},
		{"missing-section", loadSwitch, 0, "control.secret_file", "required"},
		{"missing-rules", loadSwitch, 0, "rule", "at least one [[rule]]"},
		{"rule-without-pool", loadSwitch, 37, "rule[1].pool", "required"},
		{"agent-missing-vip", loadAgent, 2, "agent.vip", "required"},
		// Validation.
		{"ipv6-vip", loadSwitch, 4, "switch.vip", "not an IPv4 address"},
		{"bad-interface", loadSwitch, 3, "switch.interface", "not a valid interface name"},
		{"duplicate-port", loadSwitch, 5, "switch.ports[2]", "port 80 is listed twice"},
		{"out-of-range", loadSwitch, 6, "switch.max_request_head", "512 is out of range [1024, 1048576]"},
		{"out-of-range-shards", loadSwitch, 6, "switch.shards", "300 is out of range [0, 256]"},
		{"small-window", loadSwitch, 7, "switch.request_window", "smaller than max_request_head"},
		{"ring-block-size", loadSwitch, 6, "switch.ring_block_size", "not a power of two"},
		{"ring-version", loadSwitch, 6, "switch.ring_version", "not 2 or 3"},
		{"ring-block-timeout", loadSwitch, 6, "switch.ring_block_timeout", "whole number of milliseconds"},
		{"negative-duration", loadSwitch, 6, "switch.idle_timeout", "not longer than zero"},
		{"reconnect-order", loadSwitch, 10, "control.reconnect_max", "shorter than reconnect_min"},
		{"health-timeout", loadSwitch, 12, "health.timeout", "longer than interval"},
		{"health-rise", loadSwitch, 11, "health.rise", "0 is out of range [1, 100]"},
		{"admin-on-vip", loadSwitch, 11, "admin.listen", "is the VIP"},
		{"duplicate-backend", loadSwitch, 21, "backend[2].name", `backend "be1" is already defined by backend[1]`},
		{"duplicate-address", loadSwitch, 22, "backend[2].address", "already used by backend[1]"},
		{"backend-is-vip", loadSwitch, 12, "backend[0].address", "is the VIP"},
		{"duplicate-pool", loadSwitch, 30, "pool[1].name", `pool "web" is already defined by pool[0]`},
		{"unknown-backend", loadSwitch, 31, "pool[1].backends[1]", `unknown backend "be9"`},
		{"empty-pool", loadSwitch, 31, "pool[1].backends", "at least one backend"},
		{"bad-policy", loadSwitch, 28, "pool[0].policy", `unknown policy "fastest"`},
		{"tls-port-twice", loadSwitch, 6, "switch.tls_ports[0]", "also in switch.ports"},
		{"cookie-affinity-key", loadSwitch, 29, "pool[0].hash_key", `needs "cookie:NAME"`},
		{"rule-http-and-tls", loadSwitch, 34, "rule[0]", "not both"},
		{"bad-path-regex", loadSwitch, 35, "rule[0].path_regex", "does not compile"},
		{"unreachable-rule", loadSwitch, 41, "rule[2]", "can never match: rule[1]"},
		{"unknown-pool", loadSwitch, 38, "rule[1].pool", `unknown pool "api"`},
		{"multiline-array", loadSwitch, 41, "rule[1].pool", `unknown pool "api"`},
		{"bad-header", loadSwitch, 35, "rule[0].header", `header name "X Canary" is not an HTTP token`},
		{"bad-header-value", loadSwitch, 38, "rule[1].header", "control characters"},
		{"bad-cookie", loadSwitch, 38, "rule[1].cookie", `cookie value "a b"`},
		{"bad-path-prefix", loadSwitch, 34, "rule[0].path_prefix", `does not start with "/"`},
		{"bad-host", loadSwitch, 38, "rule[1].host", "not a valid host name"},
		{"bgp-missing-asn", loadSwitch, 21, "bgp.asn", "required"},
		{"bgp-as-trans", loadSwitch, 22, "bgp.asn", "AS_TRANS"},
		{"bgp-asn-range", loadSwitch, 22, "bgp.asn", "4294967296 is out of range"},
		{"bgp-hold-time", loadSwitch, 23, "bgp.hold_time", "shorter than the minimum 3s"},
		{"bgp-hold-time-fraction", loadSwitch, 23, "bgp.hold_time", "not a whole number of seconds"},
		{"bgp-no-peer", loadSwitch, 21, "bgp.peer", "at least one [[bgp.peer]]"},
		{"bgp-peer-ipv6", loadSwitch, 25, "bgp.peer[0].address", "not an IPv4 address"},
		{"bgp-duplicate-peer", loadSwitch, 29, "bgp.peer[1].address", "already used by bgp.peer[0]"},
		{"bgp-peer-asn", loadSwitch, 24, "bgp.peer[0].asn", "required"},
		{"bgp-local-vip", loadSwitch, 23, "bgp.local_address", "is the VIP"},
		{"bgp-bfd-type", loadSwitch, 27, "bgp.peer[0].bfd", "expected a boolean, found a string"},
		{"bgp-peer-port", loadSwitch, 27, "bgp.peer[0].port", "port 0"},
		{"agent-both", loadAgent, 7, "serve", "both set"},
		{"agent-neither", loadAgent, 7, "serve", "one of static_root and upstream is required"},
		{"agent-upstream", loadAgent, 8, "serve.upstream", "port from 1 to 65535"},
		{"agent-direct-vip", loadAgent, 9, "serve.direct_listen", "is the VIP"},
		{"agent-proxy-protocol", loadAgent, 9, "serve.proxy_protocol", "3 is out of range [0, 2]"},
		{"agent-proxy-static", loadAgent, 9, "serve.proxy_protocol", "only with upstream"},
		{"agent-tls-half", loadAgent, 9, "serve.tls_cert", "go together"},
		{"agent-tls-upstream", loadAgent, 9, "serve.tls_cert", "only with static_root"},
	}
	tested := make(map[string]bool)
	for _, tt := range tests {
		file := filepath.Join("testdata", "bad", tt.file+".toml")
		tested[file] = true
		t.Run(tt.file, func(t *testing.T) {
			c, err := tt.load(file)
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("load(%s) = %+v, %v; want an *Error", file, c, err)
			}
			want := Error{File: file, Line: tt.line, Key: tt.key}
			if diff := cmp.Diff(want, *got, cmpopts.IgnoreFields(Error{}, "Msg", "Err")); diff != "" {
				t.Errorf("load(%s) error mismatch (-want +got):\n%s", file, diff)
			}
			if !strings.Contains(got.Msg, tt.msg) {
				t.Errorf("load(%s) message %q does not contain %q", file, got.Msg, tt.msg)
			}
		})
	}
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !tested[f] {
			t.Errorf("%s has no test case", f)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"full", &Error{File: "a.toml", Line: 3, Key: "switch.vip", Msg: "bad"}, "a.toml:3: switch.vip: bad"},
		{"no line", &Error{File: "a.toml", Key: "rule", Msg: "missing"}, "a.toml: rule: missing"},
		{"no key", &Error{File: "secret", Msg: "short"}, "secret: short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "none.toml")
	_, err := LoadSwitch(file)
	var e *Error
	if !errors.As(err, &e) || e.File != file || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadSwitch(%s) = %v; want an *Error wrapping fs.ErrNotExist", file, err)
	}
	if want := file + ": open: no such file or directory"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func defaultSwitchSection() SwitchSection {
	return SwitchSection{
		Interface:        "eth0",
		VIP:              netip.MustParseAddr("198.18.0.100"),
		Ports:            []uint16{80},
		MaxFlows:         262144,
		MaxRequestHead:   16384,
		RequestWindow:    65536,
		RequestTimeout:   Duration{10 * time.Second},
		HandoffTimeout:   Duration{2 * time.Second},
		IdleTimeout:      Duration{300 * time.Second},
		DrainTimeout:     Duration{60 * time.Second},
		RecoveryRate:     50000,
		RecoveryTimeout:  Duration{500 * time.Millisecond},
		Linger:           Duration{10 * time.Second},
		RingVersion:      2,
		RingSlots:        512,
		RingBlockSize:    1048576,
		RingBlocks:       16,
		RingBlockTimeout: Duration{time.Millisecond},
		ARPRefresh:       Duration{10 * time.Second},
	}
}

func TestLoadSwitchDefaults(t *testing.T) {
	got, err := LoadSwitch("testdata/switch-minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Switch{
		Switch: defaultSwitchSection(),
		Control: Control{
			SecretFile:     "secret",
			ConnectTimeout: Duration{time.Second},
			ReconnectMin:   Duration{100 * time.Millisecond},
			ReconnectMax:   Duration{5 * time.Second},
		},
		Health:   Health{Interval: Duration{time.Second}, Timeout: Duration{time.Second}, Rise: 2, Fall: 3},
		Backends: []Backend{{Name: "be1", Address: netip.MustParseAddr("198.18.0.21"), Agent: netip.MustParseAddrPort("198.18.0.21:7070"), Weight: 1}},
		Pools:    []Pool{{Name: "all", Backends: []string{"be1"}, Policy: "round-robin", LoadFactor: 1.25, LARDLow: 25, LARDHigh: 65}},
		Rules:    []Rule{{Pool: "all"}},
	}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("LoadSwitch mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadSwitchExample checks the documented example file.
func TestLoadSwitchExample(t *testing.T) {
	got, err := LoadSwitch("testdata/switch.toml")
	if err != nil {
		t.Fatal(err)
	}
	section := defaultSwitchSection()
	section.Ports = []uint16{80, 8080}
	section.Shards = 2
	want := &Switch{
		Switch: section,
		Control: Control{
			SecretFile:     "/etc/webswitch/secret",
			ConnectTimeout: Duration{time.Second},
			ReconnectMin:   Duration{100 * time.Millisecond},
			ReconnectMax:   Duration{5 * time.Second},
		},
		Health: Health{Interval: Duration{time.Second}, Timeout: Duration{time.Second}, Rise: 2, Fall: 3},
		Admin:  Admin{Listen: netip.MustParseAddrPort("198.18.0.2:9100")},
		Backends: []Backend{
			{Name: "be1", Address: netip.MustParseAddr("198.18.0.21"), Agent: netip.MustParseAddrPort("198.18.0.21:7070"), Weight: 1},
			{Name: "be2", Address: netip.MustParseAddr("198.18.0.22"), Agent: netip.MustParseAddrPort("198.18.0.22:7070"), Weight: 1},
		},
		Pools: []Pool{
			{Name: "static", Backends: []string{"be1"}, Policy: "round-robin", LoadFactor: 1.25, LARDLow: 25, LARDHigh: 65},
			{Name: "web", Backends: []string{"be1", "be2"}, Policy: "round-robin", LoadFactor: 1.25, LARDLow: 25, LARDHigh: 65},
		},
		Rules: []Rule{
			{PathPrefix: "/static/", Pool: "static"},
			{Host: "api.example.com", Header: "X-Canary: 1", Cookie: "beta", Pool: "web"},
			{Pool: "web"},
		},
	}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("LoadSwitch mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadSwitchBGP loads a switch with a [bgp] table, and checks that a
// file without one has none.
func TestLoadSwitchBGP(t *testing.T) {
	got, err := LoadSwitch("testdata/switch-bgp.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &BGP{
		ASN:          65010,
		RouterID:     netip.MustParseAddr("198.18.0.2"),
		LocalAddress: netip.MustParseAddr("198.18.0.2"),
		ListenPort:   179,
		HoldTime:     Duration{3 * time.Second},
		Peers: []BGPPeer{
			{Address: netip.MustParseAddr("198.18.0.1"), Port: 1179, ASN: 65000, BFD: true},
			{Address: netip.MustParseAddr("198.18.0.3"), Port: 179, ASN: 65010},
		},
	}
	if diff := cmp.Diff(want, got.BGP, cmpAddrs); diff != "" {
		t.Errorf("BGP mismatch (-want +got):\n%s", diff)
	}

	file := filepath.Join(t.TempDir(), "switch.toml")
	if err := os.WriteFile(file, []byte("[switch]\ninterface = \"eth0\"\nvip = \"198.18.0.100\"\n[control]\nsecret_file = \"s\"\n"+
		"[bgp]\nasn = 4200000000\n[[bgp.peer]]\naddress = \"198.18.0.1\"\nasn = 65000\n"+
		"[[backend]]\nname = \"be1\"\naddress = \"198.18.0.21\"\nagent = \"198.18.0.21:7070\"\n[[pool]]\nname = \"all\"\nbackends = [\"be1\"]\n[[rule]]\npool = \"all\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defaults, err := LoadSwitch(file)
	if err != nil {
		t.Fatal(err)
	}
	want = &BGP{ASN: 4200000000, HoldTime: Duration{9 * time.Second}, Peers: []BGPPeer{{Address: netip.MustParseAddr("198.18.0.1"), Port: 179, ASN: 65000}}}
	if diff := cmp.Diff(want, defaults.BGP, cmpAddrs); diff != "" {
		t.Errorf("BGP defaults mismatch (-want +got):\n%s", diff)
	}

	plain, err := LoadSwitch("testdata/switch-minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	if plain.BGP != nil {
		t.Errorf("a file without [bgp]: BGP = %+v, want nil", plain.BGP)
	}
}

func TestLoadAgentExample(t *testing.T) {
	got, err := LoadAgent("testdata/agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Agent{
		Agent: AgentSection{
			Listen:     netip.MustParseAddrPort("198.18.0.21:7070"),
			VIP:        netip.MustParseAddr("198.18.0.100"),
			SecretFile: "/etc/webswitch/secret",
		},
		Serve: Serve{StaticRoot: "/srv/www", DirectListen: netip.MustParseAddrPort("198.18.0.21:8080"), DrainTimeout: Duration{2 * time.Minute}},
	}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("LoadAgent mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadAgentProxyProtocol(t *testing.T) {
	const head = "[agent]\nlisten = \"198.18.0.21:7070\"\nvip = \"198.18.0.100\"\nsecret_file = \"secret\"\n" +
		"[serve]\nupstream = \"127.0.0.1:8080\"\n"
	for _, tt := range []struct {
		line string
		want int
	}{{"", 0}, {"proxy_protocol = 0", 0}, {"proxy_protocol = 1", 1}, {"proxy_protocol = 2", 2}} {
		file := filepath.Join(t.TempDir(), "agent.toml")
		if err := os.WriteFile(file, []byte(head+tt.line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadAgent(file)
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if got.Serve.ProxyProtocol != tt.want {
			t.Errorf("%q: ProxyProtocol = %d, want %d", tt.line, got.Serve.ProxyProtocol, tt.want)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	type match struct {
		Name, Value string
		HasValue    bool
	}
	tests := []struct {
		name   string
		rule   Rule
		header match
		cookie match
	}{
		{"unset", Rule{}, match{}, match{}},
		{"present", Rule{Header: "X-Canary", Cookie: "beta"}, match{"X-Canary", "", false}, match{"beta", "", false}},
		{"equal", Rule{Header: "X-Canary: 1", Cookie: "beta=on"}, match{"X-Canary", "1", true}, match{"beta", "on", true}},
		{"blanks", Rule{Header: " X-A :\tb c ", Cookie: " id = 7 "}, match{"X-A", "b c", true}, match{"id", "7", true}},
		{"empty value", Rule{Header: "X-A:", Cookie: "id="}, match{"X-A", "", true}, match{"id", "", true}},
		{"separator in value", Rule{Header: "X-A: b:c", Cookie: "id=a=b"}, match{"X-A", "b:c", true}, match{"id", "a=b", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h, c match
			h.Name, h.Value, h.HasValue = tt.rule.HeaderMatch()
			c.Name, c.Value, c.HasValue = tt.rule.CookieMatch()
			if diff := cmp.Diff(tt.header, h); diff != "" {
				t.Errorf("HeaderMatch mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.cookie, c); diff != "" {
				t.Errorf("CookieMatch mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadSecret(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{"exact", "0123456789abcdef", "0123456789abcdef", ""},
		{"trailing newline", "0123456789abcdef\n", "0123456789abcdef", ""},
		{"trailing blanks", "0123456789abcdef \t\r\n\n", "0123456789abcdef", ""},
		{"leading blanks kept", " 0123456789abcdef", " 0123456789abcdef", ""},
		{"binary", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff", ""},
		{"short", "0123456789abcde\n", "", "secret is 15 bytes long, want at least 16"},
		{"blank", " \n\n", "", "secret is 0 bytes long"},
		{"empty", "", "", "secret is 0 bytes long"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "secret"+string(rune('a'+i)))
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadSecret(file)
			if tt.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.File != file || e.Line != 0 || e.Key != "" || !strings.Contains(e.Msg, tt.wantErr) {
					t.Fatalf("LoadSecret = %q, %v; want an *Error for %s containing %q", got, err, file, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("LoadSecret = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		file := filepath.Join(dir, "none")
		_, err := LoadSecret(file)
		var e *Error
		if !errors.As(err, &e) || e.File != file || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("LoadSecret = %v; want an *Error for %s wrapping fs.ErrNotExist", err, file)
		}
	})
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	if b, err := d.MarshalText(); err != nil || string(b) != "1m30s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	if err := d.UnmarshalText([]byte("90")); err == nil {
		t.Fatal("UnmarshalText(90) succeeded; want an error")
	}
}

// TestWildcardPatterns loads rules with a wildcard host and server name,
// and refuses a star anywhere but in front.
func TestWildcardPatterns(t *testing.T) {
	base, err := os.ReadFile("testdata/switch-minimal.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rule string
		ok   bool
	}{
		{`host = "*.img.example"`, true},
		{`host = "img.example:8080"`, false}, // l7 matches hosts without their port
		{`sni = "*.b.example"`, true},
		{`host = "a.*.example"`, false},
		{`sni = "*"`, false},
		{`sni = "*."`, false},
	} {
		file := filepath.Join(t.TempDir(), "switch.toml")
		text := strings.Replace(string(base), "[[rule]]\n", "[[rule]]\n"+tt.rule+"\npool = \"all\"\n[[rule]]\n", 1)
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSwitch(file); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want accepted %v", tt.rule, err, tt.ok)
		}
	}
}

// poolFile writes a switch file with n back-ends of weight w and one pool
// of all of them with the given extra keys.
func poolFile(t *testing.T, n, w int, keys string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("[switch]\ninterface = \"eth0\"\nvip = \"198.18.0.100\"\n[control]\nsecret_file = \"secret\"\n")
	var names []string
	for i := range n {
		fmt.Fprintf(&b, "[[backend]]\nname = \"be%d\"\naddress = \"198.18.1.%d\"\nagent = \"198.18.1.%d:7070\"\nweight = %d\n", i, i+1, i+1, w)
		names = append(names, fmt.Sprintf("%q", fmt.Sprintf("be%d", i)))
	}
	fmt.Fprintf(&b, "[[pool]]\nname = \"all\"\nbackends = [%s]\n%s\n[[rule]]\npool = \"all\"\n", strings.Join(names, ", "), keys)
	file := filepath.Join(t.TempDir(), "switch.toml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestL7Pools checks the pools conf builds for l7, and that l7's checks
// of a pool are reported at the pool's key.
func TestL7Pools(t *testing.T) {
	base := l7.Pool{Name: "all", Backends: []int{0, 1}, Weights: []int{2, 2}, LoadFactor: 1.25, LARDLow: 25, LARDHigh: 65}
	with := func(f func(p *l7.Pool)) l7.Pool {
		p := base
		f(&p)
		return p
	}
	tests := []struct {
		keys string
		want l7.Pool
		key  string // of the error, "" when none
		msg  string // a part of the error's message
	}{
		{keys: "", want: base},
		{keys: `policy = "lard"`, want: with(func(p *l7.Pool) { p.Policy, p.Key = l7.PolicyLARD, l7.HashKey{Kind: l7.KeyPath} })},
		{keys: `policy = "bounded-load-hash"` + "\nload_factor = 2", want: with(func(p *l7.Pool) {
			p.Policy, p.Key, p.LoadFactor = l7.PolicyBoundedLoadHash, l7.HashKey{Kind: l7.KeyPath}, 2
		})},
		{keys: `policy = "bounded-load-hash"` + "\nhash_key = \"header:X-User\"\nload_factor = 1.5", want: with(func(p *l7.Pool) {
			p.Policy, p.Key, p.LoadFactor = l7.PolicyBoundedLoadHash, l7.HashKey{Kind: l7.KeyHeader, Name: "X-User"}, 1.5
		})},
		{keys: `policy = "cookie-affinity"` + "\nhash_key = \"cookie:sid\"", want: with(func(p *l7.Pool) {
			p.Policy, p.Key = l7.PolicyCookieAffinity, l7.HashKey{Kind: l7.KeyCookie, Name: "sid"}
		})},
		{keys: `policy = "source-affinity"`, want: with(func(p *l7.Pool) { p.Policy, p.Key = l7.PolicySourceAffinity, l7.HashKey{Kind: l7.KeyClient} })},
		{keys: `policy = "lard"` + "\nlard_low = 5\nlard_high = 1048576", want: with(func(p *l7.Pool) {
			p.Policy, p.Key, p.LARDLow, p.LARDHigh = l7.PolicyLARD, l7.HashKey{Kind: l7.KeyPath}, 5, 1<<20
		})},

		{keys: `policy = "Lard"`, key: "policy", msg: `unknown policy "Lard" (one of round-robin, weighted-round-robin,`},
		{keys: `hash_key = "path"`, key: "hash_key", msg: "policy round-robin hashes nothing"},
		{keys: `policy = "lard"` + "\nhash_key = \"host\"", key: "hash_key", msg: `policy lard needs "path"`},
		{keys: `policy = "source-affinity"` + "\nhash_key = \"path\"", key: "hash_key", msg: `policy source-affinity needs "client"`},
		{keys: `policy = "cookie-affinity"` + "\nhash_key = \"cookie:a b\"", key: "hash_key", msg: `"a b" is not a cookie name`},
		{keys: `policy = "bounded-load-hash"` + "\nhash_key = \"path:x\"", key: "hash_key", msg: "path takes no name"},
		{keys: "load_factor = 10.5", key: "load_factor", msg: "load factor must be from 1 to 10"},
		{keys: `load_factor = "2"`, key: "load_factor", msg: "expected a number, found a string"},
		{keys: "lard_low = -1", key: "lard_low", msg: "low threshold must be from 1 to 1048576"},
		{keys: "lard_low = 70", key: "lard_high", msg: "must be above the low one"},
		{keys: "lard_high = 1048577", key: "lard_high", msg: "at most 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			file := poolFile(t, 2, 2, tt.keys)
			s, err := LoadSwitch(file)
			if tt.key != "" {
				var e *Error
				if !errors.As(err, &e) || e.Key != "pool[0]."+tt.key || e.Line == 0 || !strings.Contains(e.Msg, tt.msg) {
					t.Fatalf("LoadSwitch = %v; want an error at pool[0].%s containing %q", err, tt.key, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := s.L7Pools()
			if diff := cmp.Diff([]l7.Pool{tt.want}, got, cmpopts.IgnoreFields(l7.Pool{}, "Targets")); diff != "" {
				t.Errorf("L7Pools mismatch (-want +got):\n%s", diff)
			}
			if (got[0].Targets != nil) != (got[0].Policy == l7.PolicyLARD) {
				t.Errorf("L7Pools: target table %p for %v", got[0].Targets, got[0].Policy)
			}
		})
	}
	t.Run("ring too large", func(t *testing.T) {
		_, err := LoadSwitch(poolFile(t, 17, l7.MaxWeight, `policy = "source-affinity"`))
		var e *Error
		if !errors.As(err, &e) || e.Key != "pool[0].backends" || !strings.Contains(e.Msg, "replicas times the weights") {
			t.Fatalf("LoadSwitch = %v; want an error at pool[0].backends about the ring", err)
		}
	})
}

func TestL7Rules(t *testing.T) {
	s, err := LoadSwitch("testdata/switch.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []l7.Rule{
		{Match: l7.Match{PathPrefix: "/static/"}, Pool: 0},
		{Match: l7.Match{Host: "api.example.com", Header: "X-Canary", HeaderValue: "1", HeaderHasValue: true, Cookie: "beta"}, Pool: 1},
		{Pool: 1},
	}
	if diff := cmp.Diff(want, s.L7Rules()); diff != "" {
		t.Errorf("L7Rules mismatch (-want +got):\n%s", diff)
	}
}

// TestRestartKeys: a change to a key tagged reload:"restart" is named;
// other changes pass.
func TestRestartKeys(t *testing.T) {
	cur, err := LoadSwitch("testdata/switch.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		edit func(s *Switch)
	}{
		{"switch.vip", func(s *Switch) { s.Switch.VIP = netip.MustParseAddr("198.18.0.101") }},
		{"switch.ports", func(s *Switch) { s.Switch.Ports = append(s.Switch.Ports, 8080) }},
		{"switch.tls_ports", func(s *Switch) { s.Switch.TLSPorts = []uint16{8443} }},
		{"switch.max_flows", func(s *Switch) { s.Switch.MaxFlows++ }},
		{"switch.ring_block_timeout", func(s *Switch) { s.Switch.RingBlockTimeout.Duration *= 2 }},
		{"control.secret_file", func(s *Switch) { s.Control.SecretFile = "/etc/webswitch/other" }},
		{"admin.listen", func(s *Switch) { s.Admin.Listen = netip.MustParseAddrPort("127.0.0.1:9999") }},
		{"bgp.asn", func(s *Switch) { s.BGP = &BGP{ASN: 65010} }}, // [bgp] added
	} {
		next, _ := LoadSwitch("testdata/switch.toml")
		tt.edit(next)
		want := "next.toml: " + tt.key + ": cannot change while the switch runs; restart it"
		if err := cur.RestartKeys(next, "next.toml"); err == nil || err.Error() != want {
			t.Errorf("changing %s: %v, want %q", tt.key, err, want)
		}
	}
	next, _ := LoadSwitch("testdata/switch.toml")
	next.Switch.RequestTimeout.Duration, next.Switch.IdleTimeout.Duration, next.Health.Fall = time.Minute, time.Hour, 9
	next.Backends = next.Backends[:1]
	if err := cur.RestartKeys(next, "next.toml"); err != nil {
		t.Errorf("changing timeouts, health and back-ends: %v, want it taken", err)
	}

	// The whole [bgp] table needs a restart, its removal too.
	cur, err = LoadSwitch("testdata/switch-bgp.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		edit func(b *Switch)
	}{
		{"bgp.asn", func(s *Switch) { s.BGP = nil }},
		{"bgp.hold_time", func(s *Switch) { s.BGP.HoldTime.Duration = 30 * time.Second }},
		{"bgp.peer", func(s *Switch) { s.BGP.Peers[1].BFD = true }},
		{"bgp.peer", func(s *Switch) { s.BGP.Peers = s.BGP.Peers[:1] }},
	} {
		next, _ := LoadSwitch("testdata/switch-bgp.toml")
		tt.edit(next)
		want := "next.toml: " + tt.key + ": cannot change while the switch runs; restart it"
		if err := cur.RestartKeys(next, "next.toml"); err == nil || err.Error() != want {
			t.Errorf("changing %s: %v, want %q", tt.key, err, want)
		}
	}
	next, _ = LoadSwitch("testdata/switch-bgp.toml")
	if err := cur.RestartKeys(next, "next.toml"); err != nil {
		t.Errorf("the same [bgp]: %v, want it taken", err)
	}
}
