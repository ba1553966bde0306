package conf

import (
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Agent is the back-end agent's configuration file.
type Agent struct {
	Agent AgentSection `toml:"agent"`
	Serve Serve        `toml:"serve"`
}

// AgentSection is the [agent] table. All keys are required.
type AgentSection struct {
	// Listen is the address the agent accepts the switch's control
	// connections on.
	Listen netip.AddrPort `toml:"listen"`
	// VIP is the virtual IPv4 address, configured on the back-end's lo.
	VIP netip.Addr `toml:"vip"`
	// SecretFile is the shared secret's file, read with LoadSecret.
	SecretFile string `toml:"secret_file"`
}

// Serve is the [serve] table: what serves the handed-off connections.
// Exactly one of static_root and upstream is set.
type Serve struct {
	// StaticRoot is the directory the built-in static file server serves.
	StaticRoot string `toml:"static_root"`
	// Upstream is the "host:port" of a local server the connections are
	// spliced to.
	Upstream string `toml:"upstream"`
	// ProxyProtocol, only with Upstream, is the version of the PROXY
	// protocol header (1: text, 2: binary) sent to the upstream ahead of
	// each connection's bytes, with the client's address and port and the
	// VIP's, for servers that read it (nginx: listen ... proxy_protocol).
	// 0, the default, sends none.
	ProxyProtocol int `toml:"proxy_protocol"`
	// DirectListen, when set, is an address where the same server also
	// takes ordinary TCP connections, not handed off: for health checks,
	// for clients that bypass the switch, and for the bench's "direct"
	// and proxy set-ups. Not the VIP.
	DirectListen netip.AddrPort `toml:"direct_listen"`
	// TLSCert and TLSKey, only with StaticRoot and both or neither, are
	// PEM files of the certificate (chain) and key the static server
	// terminates TLS with, for connections handed off from the switch's
	// tls_ports (a connection is TLS when its first byte starts a TLS
	// record; the others are served plain). With upstream the bytes go to
	// the server as they are: it terminates TLS itself.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// DrainTimeout bounds a graceful stop or upgrade: the connections
	// being served get this long to finish before they are closed.
	// Default 60s.
	DrainTimeout Duration `toml:"drain_timeout"`
}

// LoadAgent reads the agent configuration file at path, decodes it
// strictly and validates it. Errors are *Error.
func LoadAgent(path string) (*Agent, error) {
	a := new(Agent)
	if err := load(path, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Agent) setDefaults() { a.Serve.DrainTimeout = Duration{60 * time.Second} }

func (a *Agent) validate(v *validator) {
	v.addrPort("agent.listen", a.Agent.Listen)
	v.ipv4("agent.vip", a.Agent.VIP)
	v.required("agent.secret_file", a.Agent.SecretFile != "")
	v.positive("serve.drain_timeout", a.Serve.DrainTimeout)
	if d := a.Serve.DirectListen; d.IsValid() {
		v.addrPort("serve.direct_listen", d)
		if d.Addr() == a.Agent.VIP {
			v.fail("serve.direct_listen", "%v is the VIP: handed-off connections arrive there", d.Addr())
		}
	}
	switch s := a.Serve; {
	case s.StaticRoot != "" && s.Upstream != "":
		v.fail("serve", "static_root and upstream are both set; set one of them")
	case s.StaticRoot == "" && s.Upstream == "":
		v.fail("serve", "one of static_root and upstream is required")
	case s.Upstream != "":
		host, port, err := net.SplitHostPort(s.Upstream)
		if err != nil {
			v.fail("serve.upstream", "%q is not host:port", s.Upstream)
			break
		}
		if n, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || n == 0 {
			v.fail("serve.upstream", "%q is not host:port with a port from 1 to 65535", s.Upstream)
		}
	}
	switch s := a.Serve; {
	case (s.TLSCert == "") != (s.TLSKey == ""):
		v.fail("serve.tls_cert", "tls_cert and tls_key go together")
	case s.TLSCert != "" && s.StaticRoot == "":
		v.fail("serve.tls_cert", "only with static_root: with upstream, the server terminates TLS")
	}
	v.intRange("serve.proxy_protocol", a.Serve.ProxyProtocol, 0, 2)
	if a.Serve.ProxyProtocol != 0 && a.Serve.Upstream == "" {
		v.fail("serve.proxy_protocol", "only with upstream: the built-in static server has no use for the header")
	}
}
