package testbed

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewPrefix(t *testing.T) {
	shape := regexp.MustCompile(`^ws[0-9a-f]{4}p[0-9]+$`)
	seen := make(map[string]bool)
	for range 20 {
		p := newPrefix()
		if !shape.MatchString(p) {
			t.Fatalf("newPrefix() = %q, want ws + 4 hex digits + p + pid", p)
		}
		if !validPrefix(p) {
			t.Fatalf("newPrefix() = %q is not a valid prefix", p)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 calls to newPrefix gave %d distinct prefixes", len(seen))
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		want   bool
	}{
		{name: "default shape", prefix: "ws3fa2p48211", want: true},
		{name: "test shape", prefix: "wsHF1234a", want: true},
		{name: "underscore", prefix: "ws_run_1", want: true},
		{name: "single letter", prefix: "w", want: true},
		{name: "longest", prefix: strings.Repeat("a", MaxPrefixLen), want: true},
		{name: "empty", prefix: "", want: false},
		{name: "too long", prefix: strings.Repeat("a", MaxPrefixLen+1), want: false},
		{name: "leading digit", prefix: "1ws", want: false},
		{name: "leading underscore", prefix: "_ws", want: false},
		{name: "hyphen", prefix: "ws-1", want: false},
		{name: "slash", prefix: "ws/1", want: false},
		{name: "dot", prefix: "ws.1", want: false},
		{name: "space", prefix: "ws 1", want: false},
		{name: "non-ASCII", prefix: "wsé", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validPrefix(tt.prefix); got != tt.want {
				t.Errorf("validPrefix(%q) = %v, want %v", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	// settings holds the exported fields of a Testbed (which has a mutex).
	type settings struct {
		Prefix            string
		Backends          int
		Switches          int
		Router            string
		CongestionControl string
		ClientOffloads    bool
	}
	off := false
	tests := []struct {
		name    string
		cfg     Config
		want    settings
		wantErr error
	}{
		{name: "explicit", cfg: Config{Prefix: "wsX", Backends: 3, Switches: 3, Router: RouterBIRD, ClientOffloads: &off, CongestionControl: "reno"},
			want: settings{Prefix: "wsX", Backends: 3, Switches: 3, Router: "bird", CongestionControl: "reno", ClientOffloads: false}},
		{name: "defaults", cfg: Config{Prefix: "wsX"},
			want: settings{Prefix: "wsX", Backends: 2, Switches: 1, CongestionControl: "cubic", ClientOffloads: true}},
		{name: "max backends", cfg: Config{Prefix: "wsX", Backends: MaxBackends},
			want: settings{Prefix: "wsX", Backends: MaxBackends, Switches: 1, CongestionControl: "cubic", ClientOffloads: true}},
		{name: "max switches", cfg: Config{Prefix: "wsX", Switches: MaxSwitches},
			want: settings{Prefix: "wsX", Backends: 2, Switches: MaxSwitches, CongestionControl: "cubic", ClientOffloads: true}},
		{name: "too many backends", cfg: Config{Prefix: "wsX", Backends: MaxBackends + 1}, wantErr: ErrBackends},
		{name: "negative backends", cfg: Config{Prefix: "wsX", Backends: -1}, wantErr: ErrBackends},
		{name: "too many switches", cfg: Config{Prefix: "wsX", Switches: MaxSwitches + 1}, wantErr: ErrSwitches},
		{name: "negative switches", cfg: Config{Prefix: "wsX", Switches: -1}, wantErr: ErrSwitches},
		{name: "unknown router", cfg: Config{Prefix: "wsX", Router: "quagga"}, wantErr: ErrRouter},
		{name: "bad prefix", cfg: Config{Prefix: "ws-x"}, wantErr: ErrBadPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := newTestbed(tt.cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("newTestbed: error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := settings{Prefix: tb.Prefix, Backends: tb.Backends, Switches: tb.Switches, Router: tb.Router,
				CongestionControl: tb.CongestionControl, ClientOffloads: tb.ClientOffloads}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("newTestbed (-want +got):\n%s", diff)
			}
		})
	}
	tb, err := newTestbed(Config{})
	if err != nil || !validPrefix(tb.Prefix) {
		t.Errorf("newTestbed(Config{}) = prefix %q, error %v; want a generated valid prefix", tb.Prefix, err)
	}
}

// TestNames checks the name shapes for the largest testbed, without and
// with its attacker host and its router: namespace names, LAN-side
// interface names (at most 15 characters, IFNAMSIZ-1) and addresses, which
// must not reach the VIP nor each other.
func TestNames(t *testing.T) {
	for _, attacker := range []bool{false, true} {
		for _, routed := range []bool{false, true} {
			t.Run(fmt.Sprintf("attacker=%v,routed=%v", attacker, routed), func(t *testing.T) {
				checkNames(t, attacker, routed)
			})
		}
	}
}

func checkNames(t *testing.T, attacker, routed bool) {
	tb := &Testbed{Prefix: strings.Repeat("w", MaxPrefixLen), Backends: MaxBackends, Switches: MaxSwitches, routed: routed}
	tb.attacker.Store(attacker)
	hosts := tb.Hosts()
	want := 2 + MaxSwitches + MaxBackends
	if attacker {
		want++
		if last := hosts[len(hosts)-1]; last != "atk" {
			t.Errorf("Hosts() ends with %q, want atk", last)
		}
		if ip := tb.IP("atk"); ip != AttackerIP {
			t.Errorf("IP(atk) = %q, want %q", ip, AttackerIP)
		}
	}
	wantCli := ClientIP
	if routed {
		want++
		wantCli = RoutedClientIP
		if ip := tb.IP("rtr"); ip != RouterIP {
			t.Errorf("IP(rtr) = %q, want %q", ip, RouterIP)
		}
	}
	if ip := tb.IP("cli"); ip != wantCli {
		t.Errorf("IP(cli) = %q, want %q", ip, wantCli)
	}
	if len(hosts) != want {
		t.Fatalf("Hosts() has %d names, want %d", len(hosts), want)
	}
	if tb.IP("sw") != SwitchIP || SwitchHost(1) != "sw" || SwitchHost(2) != "sw2" || tb.IP("sw2") != "198.18.0.3" {
		t.Errorf("switch names and addresses: %s %s, %s %s", SwitchHost(1), tb.IP("sw"), SwitchHost(2), tb.IP("sw2"))
	}
	seenIP := map[string]string{}
	for _, h := range hosts {
		if len(h) > 15 {
			t.Errorf("interface name %q is longer than 15 characters", h)
		}
		if want := tb.Prefix + "-" + h; tb.NS(h) != want {
			t.Errorf("NS(%q) = %q, want %q", h, tb.NS(h), want)
		}
		ip := tb.IP(h)
		if h == "lan" {
			if ip != "" {
				t.Errorf("IP(lan) = %q, want none", ip)
			}
			continue
		}
		if h == "cli" && routed {
			if !strings.HasPrefix(ip, "198.19.0.") {
				t.Errorf("IP(cli) = %q, want an address in %s", ip, ClientNet)
			}
		} else if !strings.HasPrefix(ip, "198.18.0.") || ip == VIP {
			t.Errorf("IP(%q) = %q, want an address in %s other than the VIP", h, ip, LAN)
		}
		if other, dup := seenIP[ip]; dup {
			t.Errorf("IP(%q) = IP(%q) = %q", h, other, ip)
		}
		seenIP[ip] = h
	}
	if other, dup := seenIP[ClientIP]; dup && routed {
		t.Errorf("IP(%q) = %s, the LAN client's address", other, ClientIP)
	}
	bad := []string{"", "be0", "be01", "be65", "bex", "be", "eth0", "root", "lan2", "atk1", "sw0", "sw1", "sw9", "sw02", "rtr1"}
	if !attacker {
		bad = append(bad, "atk")
	}
	if !routed {
		bad = append(bad, "rtr")
	}
	for _, h := range bad {
		if ns := tb.NS(h); ns != "" {
			t.Errorf("NS(%q) = %q, want none", h, ns)
		}
		if ip := tb.IP(h); ip != "" {
			t.Errorf("IP(%q) = %q, want none", h, ip)
		}
	}
	if err := tb.Command("be65", "true").Run(); !errors.Is(err, ErrHost) {
		t.Errorf("Command on an unknown host: Run error %v, want ErrHost", err)
	}
}

func TestBackendIP(t *testing.T) {
	tests := []struct {
		i    int
		want string
	}{
		{1, "198.18.0.21"},
		{2, "198.18.0.22"},
		{MaxBackends, "198.18.0.84"},
	}
	for _, tt := range tests {
		if got := BackendIP(tt.i); got != tt.want {
			t.Errorf("BackendIP(%d) = %q, want %q", tt.i, got, tt.want)
		}
	}
}

func TestParseNetnsList(t *testing.T) {
	out := "wsHF1a-be1 (id: 4)\nwsHF1a-lan (id: 0)\nother\n\n"
	want := map[string]bool{"wsHF1a-be1": true, "wsHF1a-lan": true, "other": true}
	if diff := cmp.Diff(want, parseNetnsList(out)); diff != "" {
		t.Errorf("parseNetnsList (-want +got):\n%s", diff)
	}
}

func TestParseSNMP(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    map[string]uint64
		wantErr bool
	}{
		{
			name: "snmp and netstat",
			text: "Ip: Forwarding DefaultTTL\nIp: 2 64\n" +
				"Tcp: RtoAlgorithm MaxConn RetransSegs InCsumErrors\nTcp: 1 -1 7 0\n" +
				"TcpExt: SyncookiesSent TCPTimeouts\nTcpExt: 0 18446744073709551615\n",
			want: map[string]uint64{
				"Ip.Forwarding": 2, "Ip.DefaultTTL": 64,
				"Tcp.RtoAlgorithm": 1, "Tcp.RetransSegs": 7, "Tcp.InCsumErrors": 0,
				"TcpExt.SyncookiesSent": 0, "TcpExt.TCPTimeouts": 18446744073709551615,
			},
		},
		{name: "empty", text: "", want: map[string]uint64{}},
		{name: "header only", text: "Tcp: RetransSegs\n", wantErr: true},
		{name: "count mismatch", text: "Tcp: A B\nTcp: 1\n", wantErr: true},
		{name: "proto mismatch", text: "Tcp: A\nUdp: 1\n", wantErr: true},
		{name: "no colon", text: "Tcp A\nTcp 1\n", wantErr: true},
		{name: "empty proto", text: ": A\n: 1\n", wantErr: true},
		{name: "not a number", text: "Tcp: A\nTcp: x\n", wantErr: true},
		{name: "overflow", text: "Tcp: A\nTcp: 18446744073709551616\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSNMP(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSNMP error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errSNMPFormat) {
					t.Errorf("parseSNMP error %v does not wrap errSNMPFormat", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseSNMP (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseSNMP checks that parseSNMP never panics and that every key it
// returns is "Proto.Name" with both parts taken from the input. The seed
// testdata/fuzz/FuzzParseSNMP/empty_proto_name is a crasher it found: a
// header ":" with no protocol name gave the key ".0".
func FuzzParseSNMP(f *testing.F) {
	f.Add("Tcp: RtoAlgorithm MaxConn RetransSegs\nTcp: 1 -1 7\n")
	f.Add("Ip: A\nIp: 1\n\nTcpExt: B C\nTcpExt: 2 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseSNMP(text)
		if err != nil {
			return
		}
		for k := range m {
			proto, name, ok := strings.Cut(k, ".")
			if !ok || proto == "" || name == "" || !strings.Contains(text, proto+":") || !strings.Contains(text, name) {
				t.Errorf("key %q not built from the input", k)
			}
		}
	})
}

func TestOrphans(t *testing.T) {
	existing := map[string]bool{
		"ws3fa2p100-lan": true, "ws3fa2p100-cli": true, // pid 100 is gone: orphans
		"ws0b1cp200-sw":  true, // pid 200 runs
		"wsF1234-lan":    true, // another prefix
		"wsxyzwp100-lan": true, // not hex
		"ws3fa2p-lan":    true, // no pid
		"ws3fa2q100-lan": true, // not "p"
		"netns":          true,
	}
	got := orphans(existing, func(pid int) bool { return pid == 200 })
	slices.Sort(got)
	if want := []string{"ws3fa2p100-cli", "ws3fa2p100-lan"}; !slices.Equal(got, want) {
		t.Errorf("orphans = %v, want %v", got, want)
	}
	if !processExists(os.Getpid()) {
		t.Error("processExists(own pid) = false")
	}
}
