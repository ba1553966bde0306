package conf

import (
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"webswitch/handoff"
	"webswitch/l7"
	"webswitch/ring"
)

// Switch is the switch's configuration file.
type Switch struct {
	Switch   SwitchSection `toml:"switch"`
	Control  Control       `toml:"control"`
	Health   Health        `toml:"health"`
	Admin    Admin         `toml:"admin"`
	BGP      *BGP          `toml:"bgp"` // nil without a [bgp] table
	Backends []Backend     `toml:"backend"`
	Pools    []Pool        `toml:"pool"`
	Rules    []Rule        `toml:"rule"`
}

// SwitchSection is the [switch] table: the data path.
type SwitchSection struct {
	// Interface is the network interface the switch captures on (required).
	Interface string `toml:"interface" reload:"restart"`
	// VIP is the virtual IPv4 address clients connect to (required).
	VIP netip.Addr `toml:"vip" reload:"restart"`
	// Ports are the TCP ports served on the VIP with HTTP; default [80].
	Ports []uint16 `toml:"ports" reload:"restart"`
	// TLSPorts are the TCP ports served on the VIP whose first bytes are
	// a TLS ClientHello (HTTPS, not decrypted); default none.
	TLSPorts []uint16 `toml:"tls_ports" reload:"restart"`
	// Shards is the number of shards; 0, the default, means one per CPU.
	Shards int `toml:"shards" reload:"restart"`
	// MaxFlows bounds the flow table; default 262144.
	MaxFlows int `toml:"max_flows" reload:"restart"`
	// MaxRequestHead bounds a request head; a bigger one is answered with
	// 431. Default 16384.
	MaxRequestHead int `toml:"max_request_head"`
	// RequestWindow is the number of client bytes the switch buffers per
	// flow before the handoff; at least MaxRequestHead. Default 65536.
	RequestWindow int `toml:"request_window" reload:"restart"`
	// RequestTimeout is the time the whole request head has to arrive in,
	// else 408. Default 10s.
	RequestTimeout Duration `toml:"request_timeout"`
	// HandoffTimeout is the time an agent has to accept a handoff, else
	// 504. Default 2s.
	HandoffTimeout Duration `toml:"handoff_timeout"`
	// IdleTimeout expires an idle spliced flow. Default 300s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// DrainTimeout bounds a graceful stop (SIGTERM): the switch refuses
	// new connections and forwards the flows it has until they end or
	// this passes. Default 60s.
	DrainTimeout Duration `toml:"drain_timeout"`
	// RecoveryRate bounds the connections a switch asks the agents about
	// (LOOKUP) per second, all shards together: segments of connections
	// it has no entry for beyond it are dropped. Default 50000.
	RecoveryRate int `toml:"recovery_rate"`
	// RecoveryTimeout is how long the switch waits for every agent's
	// answer to a LOOKUP before deciding with the answers it has.
	// Default 500ms.
	RecoveryTimeout Duration `toml:"recovery_timeout"`
	// Linger is how long a flow is kept after the client's FIN or RST.
	// Default 10s.
	Linger Duration `toml:"linger" reload:"restart"`
	// RingVersion is the packet ring: 3 (TPACKET_V3, blocks of frames: the
	// fewest wake-ups and the least memory, but a frame may wait up to
	// ring_block_timeout before the switch sees it) or 2 (TPACKET_V2, one
	// slot per frame: each frame is seen at once, at 128 KiB of kernel
	// memory per slot). Default 2.
	RingVersion int `toml:"ring_version" reload:"restart"`
	// RingSlots is the number of frame slots of a version 2 ring. Default
	// 512 (64 MiB of kernel memory).
	RingSlots int `toml:"ring_slots" reload:"restart"`
	// RingBlockSize is the size of an RX ring block: a power of two and a
	// multiple of 4096. Default 1048576.
	RingBlockSize int `toml:"ring_block_size" reload:"restart"`
	// RingBlocks is the number of blocks of an RX ring. Default 16.
	RingBlocks int `toml:"ring_blocks" reload:"restart"`
	// RingBlockTimeout is the RX block retire timeout, in whole
	// milliseconds from 1ms to 1s. Default 1ms.
	RingBlockTimeout Duration `toml:"ring_block_timeout" reload:"restart"`
	// ARPRefresh is the period of the back-ends' ARP refresh. Default 10s.
	ARPRefresh Duration `toml:"arp_refresh"`
}

// Control is the [control] table: the switch's connections to the agents.
type Control struct {
	// SecretFile is the shared secret's file, read with LoadSecret
	// (required).
	SecretFile string `toml:"secret_file" reload:"restart"`
	// ConnectTimeout bounds a connection attempt. Default 1s.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// ReconnectMin and ReconnectMax bound the reconnection backoff.
	// Defaults 100ms and 5s.
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
}

// Health is the [health] table: how the switch checks each back-end. Every
// shard sends a PING on its control connection to the agent every Interval;
// one not answered within Timeout is a failed check. Fall failed checks in a
// row take the back-end down (the connection is closed and re-opened with
// backoff), and so does a lost connection; a back-end that was down takes
// new connections again after Rise good checks in a row. The agent's own
// report (LOAD: up, draining, down) takes effect at once.
type Health struct {
	// Interval is the time between two checks. Default 1s.
	Interval Duration `toml:"interval"`
	// Timeout bounds the wait for an answer; at most Interval. Default
	// 1s.
	Timeout Duration `toml:"timeout"`
	// Rise is the number of good checks that bring a back-end back, 1 to
	// 100. Default 2.
	Rise int `toml:"rise"`
	// Fall is the number of failed checks that take a back-end down, 1
	// to 100. Default 3.
	Fall int `toml:"fall"`
}

// Admin is the [admin] table: the admin API and metrics listener.
type Admin struct {
	// Listen is the HTTP address of /metrics (Prometheus), /healthz,
	// /readyz, /backends, /flows, /reload, /capture and, with [bgp], /bgp;
	// never the VIP. Empty (the default): no admin listener.
	Listen netip.AddrPort `toml:"listen" reload:"restart"`
}

// Backend is a [[backend]] table. All keys are required; names and
// addresses are unique.
type Backend struct {
	Name string `toml:"name"`
	// Address is the back-end's IPv4 address on the LAN.
	Address netip.Addr `toml:"address"`
	// Agent is the address of the back-end's agent.
	Agent netip.AddrPort `toml:"agent"`
	// Weight is the back-end's share for the weighted policies, 1 to 256.
	// Default 1.
	Weight int `toml:"weight"`
}

func (b *Backend) setDefaults() { b.Weight = 1 }

// Pool is a [[pool]] table: named back-ends a rule sends requests to.
type Pool struct {
	// Name is unique among pools (required).
	Name string `toml:"name"`
	// Backends are names of [[backend]]s (at least one).
	Backends []string `toml:"backends"`
	// Policy picks a back-end of the pool: a name l7.ParsePolicy knows;
	// default "round-robin".
	Policy string `toml:"policy"`
	// HashKey is what the policy hashes, in the form l7.ParseHashKey
	// reads: "path", "host", "header:NAME", "cookie:NAME" or "client"
	// (the client's address). Empty: the policy's default.
	HashKey string `toml:"hash_key"`
	// LoadFactor is bounded-load-hash's c: no back-end takes more than
	// c times the mean load. Default l7.DefaultLoadFactor.
	LoadFactor float64 `toml:"load_factor"`
	// LARDLow and LARDHigh are LARD's load thresholds (live connections
	// per back-end), as T_low and T_high in Pai et al. Defaults
	// l7.DefaultLARDLow and l7.DefaultLARDHigh.
	LARDLow  int `toml:"lard_low"`
	LARDHigh int `toml:"lard_high"`
}

func (p *Pool) setDefaults() {
	*p = Pool{Policy: l7.PolicyRoundRobin.String(), LoadFactor: l7.DefaultLoadFactor, LARDLow: l7.DefaultLARDLow, LARDHigh: l7.DefaultLARDHigh}
}

// Rule is a [[rule]] table. Rules are tried in file order; a request
// matches a rule when it matches all the rule's conditions (non-empty
// fields other than Pool), and a rule without conditions matches every
// request.
type Rule struct {
	// Host is the request's host name: exact, or "*.example.com" for its
	// subdomains. HTTP only.
	Host string `toml:"host"`
	// PathPrefix starts the request path; it starts with "/". HTTP only.
	PathPrefix string `toml:"path_prefix"`
	// PathRegex matches the request path (Go RE2 syntax, at most 1024
	// bytes). HTTP only.
	PathRegex string `toml:"path_regex"`
	// Method is the request's method, exactly. HTTP only.
	Method string `toml:"method"`
	// SNI is the TLS ClientHello's server name: exact, or
	// "*.example.com". TLS only.
	SNI string `toml:"sni"`
	// ALPN is a protocol the ClientHello offers ("h2", "http/1.1"). TLS
	// only.
	ALPN string `toml:"alpn"`
	// Header is "Name" (the header is present) or "Name: value" (it has
	// that value); see HeaderMatch.
	Header string `toml:"header"`
	// Cookie is "name" (the cookie is present) or "name=value" (it has that
	// value); see CookieMatch.
	Cookie string `toml:"cookie"`
	// Pool is the name of the [[pool]] matching requests go to (required).
	Pool string `toml:"pool"`
}

// catchAll reports whether r has no condition: it matches every request
// and every TLS connection.
func (r Rule) catchAll() bool { return r == Rule{Pool: r.Pool} }

// HeaderMatch splits the Header condition into the header name and the
// value to compare with; hasValue is false when only the header's presence
// is required. Blanks around the name and the value are dropped.
func (r Rule) HeaderMatch() (name, value string, hasValue bool) {
	name, value, hasValue = strings.Cut(r.Header, ":")
	return strings.Trim(name, " \t"), strings.Trim(value, " \t"), hasValue
}

// CookieMatch splits the Cookie condition into the cookie name and the
// value to compare with; hasValue is false when only the cookie's presence
// is required. Blanks around the name and the value are dropped.
func (r Rule) CookieMatch() (name, value string, hasValue bool) {
	name, value, hasValue = strings.Cut(r.Cookie, "=")
	return strings.Trim(name, " \t"), strings.Trim(value, " \t"), hasValue
}

// LoadSwitch reads the switch configuration file at path, decodes it
// strictly, applies the defaults and validates it. Errors are *Error.
func LoadSwitch(path string) (*Switch, error) {
	s := new(Switch)
	if err := load(path, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Switch) setDefaults() {
	s.Switch = SwitchSection{
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
		RingVersion:      ring.DefaultVersion,
		RingSlots:        512,
		RingBlockSize:    1 << 20,
		RingBlocks:       16,
		RingBlockTimeout: Duration{time.Millisecond},
		ARPRefresh:       Duration{10 * time.Second},
	}
	s.Control = Control{
		ConnectTimeout: Duration{time.Second},
		ReconnectMin:   Duration{100 * time.Millisecond},
		ReconnectMax:   Duration{5 * time.Second},
	}
	s.Health = Health{Interval: Duration{time.Second}, Timeout: Duration{time.Second}, Rise: 2, Fall: 3}
}

func (s *Switch) validate(v *validator) {
	s.Switch.validate(v)
	s.Control.validate(v)
	s.Health.validate(v)
	if a := s.Admin.Listen; a.IsValid() {
		v.addrPort("admin.listen", a)
		if a.Addr() == s.Switch.VIP {
			v.fail("admin.listen", "%v is the VIP: the switch's kernel does not own it", a.Addr())
		}
	}
	if s.BGP != nil {
		s.BGP.validate(v, s.Switch.VIP)
	}
	s.validateBackends(v)
	s.validatePools(v)
	s.validateRules(v)
}

func (s *SwitchSection) validate(v *validator) {
	if v.required("switch.interface", s.Interface != "") && !validInterfaceName(s.Interface) {
		v.fail("switch.interface", "%q is not a valid interface name", s.Interface)
	}
	v.ipv4("switch.vip", s.VIP)
	if len(s.Ports) == 0 {
		v.fail("switch.ports", "at least one port is required")
	}
	v.ports("switch.ports", s.Ports, nil)
	v.ports("switch.tls_ports", s.TLSPorts, s.Ports)
	v.intRange("switch.shards", s.Shards, 0, 256)
	v.intRange("switch.max_flows", s.MaxFlows, 1, 1<<24)
	v.intRange("switch.max_request_head", s.MaxRequestHead, 1024, l7.MaxHeadLimit)
	if s.RequestWindow < s.MaxRequestHead {
		v.fail("switch.request_window", "%d is smaller than max_request_head (%d)", s.RequestWindow, s.MaxRequestHead)
	}
	v.intRange("switch.request_window", s.RequestWindow, 1024, handoff.MaxRequest)
	v.positive("switch.request_timeout", s.RequestTimeout)
	v.positive("switch.handoff_timeout", s.HandoffTimeout)
	v.positive("switch.idle_timeout", s.IdleTimeout)
	v.positive("switch.drain_timeout", s.DrainTimeout)
	v.intRange("switch.recovery_rate", s.RecoveryRate, 1, 10000000)
	v.durationRange("switch.recovery_timeout", s.RecoveryTimeout, time.Millisecond, time.Minute)
	if s.Linger.Duration < 0 {
		v.fail("switch.linger", "%v is negative", s.Linger)
	}
	if s.RingVersion != 2 && s.RingVersion != 3 {
		v.fail("switch.ring_version", "%d is not 2 or 3", s.RingVersion)
	}
	v.intRange("switch.ring_slots", s.RingSlots, 16, 65536)
	if n := s.RingBlockSize; n < 4096 || n&(n-1) != 0 {
		v.fail("switch.ring_block_size", "%d is not a power of two and a multiple of 4096", n)
	}
	v.intRange("switch.ring_blocks", s.RingBlocks, 2, 1024)
	v.durationRange("switch.ring_block_timeout", s.RingBlockTimeout, time.Millisecond, time.Second)
	if s.RingBlockTimeout.Duration%time.Millisecond != 0 {
		v.fail("switch.ring_block_timeout", "%v is not a whole number of milliseconds", s.RingBlockTimeout)
	}
	v.positive("switch.arp_refresh", s.ARPRefresh)
}

func (c *Control) validate(v *validator) {
	v.required("control.secret_file", c.SecretFile != "")
	v.positive("control.connect_timeout", c.ConnectTimeout)
	v.positive("control.reconnect_min", c.ReconnectMin)
	if c.ReconnectMax.Duration < c.ReconnectMin.Duration {
		v.fail("control.reconnect_max", "%v is shorter than reconnect_min (%v)", c.ReconnectMax, c.ReconnectMin)
	}
}

func (h *Health) validate(v *validator) {
	v.positive("health.interval", h.Interval)
	v.positive("health.timeout", h.Timeout)
	if h.Timeout.Duration > h.Interval.Duration {
		v.fail("health.timeout", "%v is longer than interval (%v)", h.Timeout, h.Interval)
	}
	v.intRange("health.rise", h.Rise, 1, 100)
	v.intRange("health.fall", h.Fall, 1, 100)
}

func (s *Switch) validateBackends(v *validator) {
	if len(s.Backends) == 0 {
		v.fail("backend", "at least one [[backend]] is required")
	}
	names := make(map[string]int)
	addrs := make(map[netip.Addr]int)
	for i, b := range s.Backends {
		path := indexPath("backend", i)
		if v.required(path+".name", b.Name != "") {
			if j, dup := names[b.Name]; dup {
				v.fail(path+".name", "backend %q is already defined by backend[%d]", b.Name, j)
			} else {
				names[b.Name] = i
			}
		}
		v.ipv4(path+".address", b.Address)
		if j, dup := addrs[b.Address]; dup && b.Address.IsValid() {
			v.fail(path+".address", "address %v is already used by backend[%d]", b.Address, j)
		} else {
			addrs[b.Address] = i
		}
		if b.Address == s.Switch.VIP && b.Address.IsValid() {
			v.fail(path+".address", "address %v is the VIP", b.Address)
		}
		v.addrPort(path+".agent", b.Agent)
		v.intRange(path+".weight", b.Weight, 1, l7.MaxWeight)
	}
}

func (s *Switch) validatePools(v *validator) {
	backends := make(map[string]bool)
	for _, b := range s.Backends {
		backends[b.Name] = true
	}
	names := make(map[string]int)
	for i, p := range s.Pools {
		path := indexPath("pool", i)
		if v.required(path+".name", p.Name != "") {
			if j, dup := names[p.Name]; dup {
				v.fail(path+".name", "pool %q is already defined by pool[%d]", p.Name, j)
			} else {
				names[p.Name] = i
			}
		}
		if len(p.Backends) == 0 {
			v.fail(path+".backends", "at least one backend is required")
		}
		for j, b := range p.Backends {
			switch {
			case !backends[b]:
				v.fail(indexPath(path+".backends", j), "unknown backend %q", b)
			case containsBefore(p.Backends, j):
				v.fail(indexPath(path+".backends", j), "backend %q is listed twice", b)
			}
		}
		if v.err == nil { // the back-ends are known: l7 checks the rest
			if _, key, err := s.l7Pool(i); err != nil {
				v.fail(path+"."+key, "%v", err)
			}
		}
	}
}

// poolKeys are the keys of a [[pool]] that l7's errors are about; the
// others are about the back-ends and their weights.
var poolKeys = []struct {
	err error
	key string
}{
	{l7.ErrPolicy, "policy"},
	{l7.ErrHashKey, "hash_key"},
	{l7.ErrLoadFactor, "load_factor"},
	{l7.ErrLARDLow, "lard_low"},
	{l7.ErrLARDHigh, "lard_high"},
}

// l7Pool returns pool i as l7 balances it, its policy and key parsed and
// checked by l7, or the key of the pool that the error is about. The
// pool's back-ends must be known.
func (s *Switch) l7Pool(i int) (pool l7.Pool, key string, err error) {
	p := &s.Pools[i]
	pool = l7.Pool{Name: p.Name, LoadFactor: p.LoadFactor, LARDLow: int64(p.LARDLow), LARDHigh: int64(p.LARDHigh)}
	for _, name := range p.Backends {
		b := slices.IndexFunc(s.Backends, func(b Backend) bool { return b.Name == name })
		pool.Backends = append(pool.Backends, b)
		pool.Weights = append(pool.Weights, s.Backends[b].Weight)
	}
	if pool.Policy, err = l7.ParsePolicy(p.Policy); err == nil {
		pool.Key, err = l7.ParseHashKey(p.HashKey, pool.Policy)
	}
	if pool.Policy == l7.PolicyLARD {
		pool.Targets = new(l7.Targets)
	}
	if err == nil {
		err = pool.Validate()
	}
	if err != nil {
		key = "backends"
		for _, k := range poolKeys {
			if errors.Is(err, k.err) {
				key = k.key
				break
			}
		}
	}
	return pool, key, err
}

// L7Pools returns the pools as l7 balances them: their back-ends as indices
// into Backends, with their weights, their policies, keys and parameters;
// each LARD pool has a new target table, which the pickers made from it
// share. s must be valid (LoadSwitch).
func (s *Switch) L7Pools() []l7.Pool {
	pools := make([]l7.Pool, len(s.Pools))
	for i := range s.Pools {
		pools[i], _, _ = s.l7Pool(i)
	}
	return pools
}

// L7Rules returns the rules as l7.NewRouter takes them, sending requests
// to pools by their index in Pools. s must be valid (LoadSwitch).
func (s *Switch) L7Rules() []l7.Rule {
	rules := make([]l7.Rule, len(s.Rules))
	for i, r := range s.Rules {
		m := l7.Match{Host: r.Host, PathPrefix: r.PathPrefix, PathRegex: r.PathRegex, Method: r.Method, SNI: r.SNI, ALPN: r.ALPN}
		m.Header, m.HeaderValue, m.HeaderHasValue = r.HeaderMatch()
		m.Cookie, m.CookieValue, m.CookieHasValue = r.CookieMatch()
		rules[i] = l7.Rule{Match: m, Pool: slices.IndexFunc(s.Pools, func(p Pool) bool { return p.Name == r.Pool })}
	}
	return rules
}

func (s *Switch) validateRules(v *validator) {
	if len(s.Rules) == 0 {
		v.fail("rule", "at least one [[rule]] is required")
	}
	pools := make(map[string]bool)
	for _, p := range s.Pools {
		pools[p.Name] = true
	}
	catchAll := -1
	for i, r := range s.Rules {
		if catchAll >= 0 {
			v.fail(indexPath("rule", i), "can never match: rule[%d] before it has no condition and takes every connection", catchAll)
		} else if r.catchAll() {
			catchAll = i
		}
		path := indexPath("rule", i)
		if r.Host != "" && !validHostPattern(r.Host) {
			v.fail(path+".host", "%q is not a valid host name", r.Host)
		}
		switch {
		case r.PathPrefix == "":
		case r.PathPrefix[0] != '/':
			v.fail(path+".path_prefix", "%q does not start with \"/\"", r.PathPrefix)
		case strings.ContainsFunc(r.PathPrefix, isSpaceOrControl):
			v.fail(path+".path_prefix", "%q contains blanks or control characters", r.PathPrefix)
		}
		if r.PathRegex != "" {
			if _, err := regexp.Compile(r.PathRegex); err != nil || len(r.PathRegex) > 1024 {
				v.fail(path+".path_regex", "%q does not compile or is over 1024 bytes: %v", r.PathRegex, err)
			}
		}
		if r.Method != "" && !isToken(r.Method) {
			v.fail(path+".method", "%q is not an HTTP token", r.Method)
		}
		if r.SNI != "" && !validHostPattern(r.SNI) {
			v.fail(path+".sni", "%q is not a valid server name", r.SNI)
		}
		if r.ALPN != "" && (len(r.ALPN) > 255 || strings.ContainsFunc(r.ALPN, isSpaceOrControl)) {
			v.fail(path+".alpn", "%q is not a protocol name", r.ALPN)
		}
		tls, http := r.SNI != "" || r.ALPN != "", r.Host != "" || r.PathPrefix != "" || r.PathRegex != "" || r.Method != "" || r.Header != "" || r.Cookie != ""
		if tls && http {
			v.fail(path, "a rule matches HTTP (host, path, method, header, cookie) or TLS (sni, alpn), not both")
		}
		if r.Header != "" {
			name, value, _ := r.HeaderMatch()
			switch {
			case !isToken(name):
				v.fail(path+".header", "header name %q is not an HTTP token", name)
			case strings.ContainsFunc(value, func(c rune) bool { return c != '\t' && isControl(c) }):
				v.fail(path+".header", "header value %q contains control characters", value)
			}
		}
		if r.Cookie != "" {
			name, value, _ := r.CookieMatch()
			switch {
			case !isToken(name):
				v.fail(path+".cookie", "cookie name %q is not an HTTP token", name)
			case strings.ContainsFunc(value, func(c rune) bool { return !isCookieOctet(c) }):
				v.fail(path+".cookie", "cookie value %q contains characters not allowed in a cookie", value)
			}
		}
		if v.required(path+".pool", r.Pool != "") && !pools[r.Pool] {
			v.fail(path+".pool", "unknown pool %q", r.Pool)
		}
	}
	if v.err == nil { // what the checks above let through, the switch's router must take
		for i, r := range s.L7Rules() {
			if _, err := l7.NewRouter([]l7.Rule{r}); err != nil {
				v.fail(indexPath("rule", i), "%v", errors.Unwrap(err)) // without "l7: rule 0"
			}
		}
	}
}

// ports checks a list of ports: none 0, none twice, none in taken (the
// HTTP ports, for the TLS ones).
func (v *validator) ports(key string, ports, taken []uint16) {
	for i, p := range ports {
		path := indexPath(key, i)
		switch {
		case p == 0:
			v.fail(path, "port 0 is not allowed")
		case i > 0 && containsBefore(ports, i):
			v.fail(path, "port %d is listed twice", p)
		case slices.Contains(taken, p):
			v.fail(path, "port %d is also in switch.ports: a port is HTTP or TLS", p)
		}
	}
}

// containsBefore reports whether s[i] is also in s[:i].
func containsBefore[T comparable](s []T, i int) bool {
	for _, x := range s[:i] {
		if x == s[i] {
			return true
		}
	}
	return false
}

// validInterfaceName follows the kernel's dev_valid_name.
func validInterfaceName(name string) bool {
	return len(name) < 16 && name != "." && name != ".." &&
		!strings.ContainsFunc(name, func(c rune) bool { return c == '/' || c == ':' || isSpaceOrControl(c) })
}

// validHost accepts a DNS name or an IP address, with an optional port:
// the characters a Host header may carry.
func validHost(h string) bool {
	return !strings.ContainsFunc(h, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._:[]", c))
	})
}

// validHostPattern accepts what validHost does, or "*.name" for every
// subdomain of name (l7.Match.Host).
func validHostPattern(h string) bool {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return rest != "" && validHost(rest)
	}
	return validHost(h)
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c))
	})
}

// isCookieOctet reports whether c may appear in a cookie value (RFC 6265,
// section 4.1.1).
func isCookieOctet(c rune) bool {
	return c == 0x21 || 0x23 <= c && c <= 0x2b || 0x2d <= c && c <= 0x3a || 0x3c <= c && c <= 0x5b || 0x5d <= c && c <= 0x7e
}

// isControl reports whether c is an ASCII control character.
func isControl(c rune) bool { return c < ' ' || c == 0x7f }

// isSpaceOrControl reports whether c is an ASCII space or control character.
func isSpaceOrControl(c rune) bool { return c == ' ' || isControl(c) }
