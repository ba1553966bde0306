package l7

import (
	"errors"
	"testing"
)

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		s      string
		policy Policy
		want   HashKey
		err    string // the error's message; "" when none
	}{
		{s: "", policy: PolicyRoundRobin},
		{s: "", policy: PolicyWeightedRoundRobin},
		{s: "", policy: PolicyLeastConnections},
		{s: "", policy: PolicyLARD, want: HashKey{Kind: KeyPath}},
		{s: "path", policy: PolicyLARD, want: HashKey{Kind: KeyPath}},
		{s: "", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyPath}},
		{s: "path", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyPath}},
		{s: "host", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyHost}},
		{s: "header:X-User", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyHeader, Name: "X-User"}},
		{s: "cookie:sid", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyCookie, Name: "sid"}},
		{s: "client", policy: PolicyBoundedLoadHash, want: HashKey{Kind: KeyClient}},
		{s: "cookie:sid", policy: PolicyCookieAffinity, want: HashKey{Kind: KeyCookie, Name: "sid"}},
		{s: "", policy: PolicySourceAffinity, want: HashKey{Kind: KeyClient}},
		{s: "client", policy: PolicySourceAffinity, want: HashKey{Kind: KeyClient}},

		{s: "path", policy: PolicyRoundRobin, err: `invalid hash key "path": policy round-robin hashes nothing`},
		{s: "client", policy: PolicyLeastConnections, err: `invalid hash key "client": policy least-connections hashes nothing`},
		{s: "host", policy: PolicyLARD, err: `invalid hash key "host": policy lard needs "path"`},
		{s: "", policy: PolicyCookieAffinity, err: `invalid hash key: policy cookie-affinity needs "cookie:NAME"`},
		{s: "path", policy: PolicyCookieAffinity, err: `invalid hash key "path": policy cookie-affinity needs "cookie:NAME"`},
		{s: "path", policy: PolicySourceAffinity, err: `invalid hash key "path": policy source-affinity needs "client"`},
		{s: "url", policy: PolicyBoundedLoadHash, err: `invalid hash key "url": not path, host, header:NAME, cookie:NAME or client`},
		{s: "Path", policy: PolicyBoundedLoadHash, err: `invalid hash key "Path": not path, host, header:NAME, cookie:NAME or client`},
		{s: "path:x", policy: PolicyBoundedLoadHash, err: `invalid hash key "path:x": path takes no name`},
		{s: "client:", policy: PolicySourceAffinity, err: `invalid hash key "client:": client takes no name`},
		{s: "header:", policy: PolicyBoundedLoadHash, err: `invalid hash key "header:": "" is not a header name`},
		{s: "cookie:a b", policy: PolicyCookieAffinity, err: `invalid hash key "cookie:a b": "a b" is not a cookie name`},
		{s: "path", policy: numPolicies, err: "unknown policy"},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String()+"/"+tt.s, func(t *testing.T) {
			got, err := ParseHashKey(tt.s, tt.policy)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, ErrHashKey) && !errors.Is(err, ErrPolicy) {
					t.Fatalf("ParseHashKey = %v, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHashKey = %v, %v; want %v", got, err, tt.want)
			}
			if s := got.String(); tt.s != "" && s != tt.s {
				t.Errorf("String() = %q, want %q", s, tt.s)
			}
			pool := Pool{Policy: tt.policy, Key: got, Targets: new(Targets)}
			if err := pool.Validate(); err != nil {
				t.Errorf("a pool with the key: %v", err)
			}
		})
	}
}

// keyRequest is an HTTP request with every part a key can be.
const keyRequest = "GET /a/b?q=1 HTTP/1.1\r\nHost: www.example.com:8080\r\nX-User: alice\r\n" +
	"Cookie: theme=dark; sid=\"42\"\r\n\r\n"

var keyClient = []byte{198, 18, 0, 10}

func TestHashKeyFromRequest(t *testing.T) {
	buf := []byte(keyRequest)
	var req Request
	req.Reset(0)
	if st := req.Parse(buf); st != Done {
		t.Fatalf("Parse = %v", st)
	}
	tests := []struct {
		key  HashKey
		want string
	}{
		{HashKey{}, ""},
		{HashKey{Kind: KeyPath}, "/a/b"},
		{HashKey{Kind: KeyHost}, "www.example.com"},
		{HashKey{Kind: KeyHeader, Name: "x-user"}, "alice"},
		{HashKey{Kind: KeyHeader, Name: "X-None"}, ""},
		{HashKey{Kind: KeyCookie, Name: "sid"}, "42"},
		{HashKey{Kind: KeyCookie, Name: "none"}, ""},
		{HashKey{Kind: KeyClient}, string(keyClient)},
	}
	for _, tt := range tests {
		t.Run(tt.key.String(), func(t *testing.T) {
			if got := tt.key.FromRequest(buf, &req, keyClient); string(got) != tt.want {
				t.Fatalf("FromRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHashKeyFromHello(t *testing.T) {
	tests := []struct {
		name  string
		hello []byte
		key   HashKey
		want  string
	}{
		{"none", fullHello, HashKey{}, ""},
		{"path", fullHello, HashKey{Kind: KeyPath}, "www.Example.com"},
		{"host", fullHello, HashKey{Kind: KeyHost}, "www.Example.com"},
		{"host without SNI", helloWith(), HashKey{Kind: KeyHost}, ""},
		{"header", fullHello, HashKey{Kind: KeyHeader, Name: "X-User"}, ""},
		{"cookie", fullHello, HashKey{Kind: KeyCookie, Name: "sid"}, string(sid32)},
		{"cookie without session id", helloWith(), HashKey{Kind: KeyCookie, Name: "sid"}, ""},
		{"client", fullHello, HashKey{Kind: KeyClient}, string(keyClient)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h ClientHello
			h.Reset(0)
			if st := h.Parse(tt.hello); st != Done {
				t.Fatalf("Parse = %v", st)
			}
			if got := tt.key.FromHello(tt.hello, &h, keyClient); string(got) != tt.want {
				t.Fatalf("FromHello = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHashKeyNoAllocs(t *testing.T) {
	buf := []byte(keyRequest)
	var req Request
	req.Reset(0)
	req.Parse(buf)
	var h ClientHello
	h.Reset(0)
	h.Parse(fullHello)
	for kind := range numKinds {
		k := HashKey{Kind: kind, Name: "sid"}
		t.Run(k.String(), func(t *testing.T) {
			n := testing.AllocsPerRun(100, func() {
				k.FromRequest(buf, &req, keyClient)
				k.FromHello(fullHello, &h, keyClient)
			})
			if n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
}
