package l7

import (
	"errors"
	"strings"
	"testing"
)

func mustParse(t testing.TB, head string) (*Request, []byte) {
	t.Helper()
	buf := []byte(head)
	r := new(Request)
	r.Reset(0)
	if st := r.Parse(buf); st != Done {
		t.Fatalf("Parse(%q) = %v", head, st)
	}
	return r, buf
}

func get(host, target string, headers ...string) string {
	h := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, l := range headers {
		h += l + "\r\n"
	}
	return h + "\r\n"
}

func TestRoute(t *testing.T) {
	rules := []Rule{
		{Match: Match{Host: "API.example.com", PathPrefix: "/v2/"}, Pool: 1},
		{Match: Match{Host: "api.example.com"}, Pool: 2},
		{Match: Match{Host: "*.Static.example.com"}, Pool: 3},
		{Match: Match{PathPrefix: "/img/"}, Pool: 4},
		{Match: Match{Header: "X-Canary", HeaderValue: "yes", HeaderHasValue: true}, Pool: 5},
		{Match: Match{Header: "X-Debug"}, Pool: 6},
		{Match: Match{Cookie: "shard", CookieValue: "b", CookieHasValue: true}, Pool: 7},
		{Match: Match{Cookie: "session"}, Pool: 8},
		{Match: Match{Host: "[2001:db8::1]"}, Pool: 9},
		{Match: Match{Method: "POST", PathPrefix: "/upload"}, Pool: 10},
		{Match: Match{PathRegex: `^/u/[0-9]+/avatar\.(png|jpg)$`}, Pool: 11},
		{Match: Match{Method: "DELETE"}, Pool: 12},
	}
	rt, err := NewRouter(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		head string
		pool int
		ok   bool
	}{
		{name: "host and path", head: get("api.example.com", "/v2/users"), pool: 1, ok: true},
		{name: "host case and port ignored", head: get("Api.Example.COM:8443", "/v2/x"), pool: 1, ok: true},
		{name: "host trailing dot ignored", head: get("api.example.com.", "/v2/x"), pool: 1, ok: true},
		{name: "first match wins, next host rule", head: get("api.example.com", "/v1/users"), pool: 2, ok: true},
		{name: "path prefix is byte-exact", head: get("api.example.com", "/V2/users"), pool: 2, ok: true},
		{name: "absolute-form host", head: get("other", "http://api.example.com/v2/"), pool: 1, ok: true},
		{name: "wildcard subdomain", head: get("a.static.example.com", "/"), pool: 3, ok: true},
		{name: "wildcard deep subdomain", head: get("a.b.STATIC.example.com", "/"), pool: 3, ok: true},
		{name: "wildcard not apex", head: get("static.example.com", "/"), ok: false},
		{name: "wildcard not a suffix without dot", head: get("xstatic.example.com", "/"), ok: false},
		{name: "path prefix", head: get("www", "/img/a.png?x"), pool: 4, ok: true},
		{name: "path prefix ignores query", head: get("www", "/im?g/"), ok: false},
		{name: "header value", head: get("www", "/", "x-canary: yes"), pool: 5, ok: true},
		{name: "header other value", head: get("www", "/", "X-Canary: no"), ok: false},
		{name: "header present", head: get("www", "/", "X-Debug:"), pool: 6, ok: true},
		{name: "cookie value", head: get("www", "/", "Cookie: a=1; shard=b"), pool: 7, ok: true},
		{name: "cookie other value, present", head: get("www", "/", "Cookie: shard=c; session=1"), pool: 8, ok: true},
		{name: "cookie present", head: get("www", "/", "Cookie: session=x"), pool: 8, ok: true},
		{name: "IPv6 literal", head: get("[2001:DB8::1]:80", "/"), pool: 9, ok: true},
		{name: "method and path", head: "POST /upload/x HTTP/1.1\r\nHost: www\r\nContent-Length: 0\r\n\r\n", pool: 10, ok: true},
		{name: "other method", head: get("www", "/upload/x"), ok: false},
		{name: "method is case sensitive", head: "delete / HTTP/1.1\r\nHost: www\r\n\r\n", ok: false},
		{name: "method alone", head: "DELETE /x HTTP/1.1\r\nHost: www\r\n\r\n", pool: 12, ok: true},
		{name: "path regex", head: get("www", "/u/42/avatar.png?size=2"), pool: 11, ok: true},
		{name: "path regex anchored", head: get("www", "/u/42/avatar.png/x"), ok: false},
		{name: "path regex digits", head: get("www", "/u/x/avatar.jpg"), ok: false},
		{name: "no rule", head: get("www", "/"), ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, buf := mustParse(t, tt.head)
			pool, ok := rt.Route(r, buf)
			if pool != tt.pool || ok != tt.ok {
				t.Fatalf("Route = %d, %v; want %d, %v", pool, ok, tt.pool, tt.ok)
			}
		})
	}
}

func TestRouteCatchAll(t *testing.T) {
	rt, err := NewRouter([]Rule{{Match: Match{Host: "a"}, Pool: 1}, {Pool: 2}})
	if err != nil {
		t.Fatal(err)
	}
	r, buf := mustParse(t, get("b", "/"))
	if pool, ok := rt.Route(r, buf); pool != 2 || !ok {
		t.Fatalf("Route = %d, %v; want catch-all 2", pool, ok)
	}
}

func TestRouteNotDone(t *testing.T) {
	rt, err := NewRouter([]Rule{{Pool: 1}})
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("GET / HTTP/1.1\r\n")
	var r Request
	r.Reset(0)
	r.Parse(buf)
	if _, ok := rt.Route(&r, buf); ok {
		t.Fatal("Route matched a request that is not Done")
	}
}

func TestNewRouterErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		err   error
		index string
	}{
		{name: "rule after catch-all", rules: []Rule{{Match: Match{Host: "a"}}, {}, {Match: Match{Host: "b"}}}, err: ErrUnreachableRule, index: "rule 2"},
		{name: "catch-all after catch-all", rules: []Rule{{}, {}}, err: ErrUnreachableRule, index: "rule 1"},
		{name: "bare star", rules: []Rule{{Match: Match{Host: "*"}}}, err: ErrHostPattern, index: "rule 0"},
		{name: "star without dot", rules: []Rule{{Match: Match{Host: "*example.com"}}}, err: ErrHostPattern, index: "rule 0"},
		{name: "star dot only", rules: []Rule{{Match: Match{Host: "*."}}}, err: ErrHostPattern, index: "rule 0"},
		{name: "inner star", rules: []Rule{{Match: Match{Host: "a.*.com"}}}, err: ErrHostPattern, index: "rule 0"},
		{name: "host with port", rules: []Rule{{Match: Match{Host: "a"}}, {Match: Match{Host: "a:80"}}}, err: ErrHostPattern, index: "rule 1"},
		{name: "bad header name", rules: []Rule{{Match: Match{Header: "X Y"}}}, err: ErrHeaderName, index: "rule 0"},
		{name: "bad cookie name", rules: []Rule{{Match: Match{Cookie: "a=b"}}}, err: ErrCookieName, index: "rule 0"},
		{name: "header value without name", rules: []Rule{{Match: Match{PathPrefix: "/", HeaderHasValue: true}}}, err: ErrValueWithoutKey, index: "rule 0"},
		{name: "cookie value without name", rules: []Rule{{Match: Match{PathPrefix: "/", CookieHasValue: true}}}, err: ErrValueWithoutKey, index: "rule 0"},
		{name: "negative pool", rules: []Rule{{Match: Match{Host: "a"}, Pool: -1}}, err: ErrPoolIndex, index: "rule 0"},
		{name: "bad method", rules: []Rule{{Match: Match{Host: "a"}}, {Match: Match{Method: "GE T"}}}, err: ErrMethod, index: "rule 1"},
		{name: "bad regex", rules: []Rule{{Match: Match{PathRegex: "(["}}}, err: ErrPathRegex, index: "rule 0"},
		{name: "regex too long", rules: []Rule{{Match: Match{PathRegex: strings.Repeat("a", MaxPathRegex+1)}}}, err: ErrPathRegex, index: "rule 0"},
		{name: "rule after catch-all with a regex", rules: []Rule{{}, {Match: Match{PathRegex: "x"}}}, err: ErrUnreachableRule, index: "rule 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRouter(tt.rules)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.index) {
				t.Fatalf("NewRouter error %v; want %v naming %q", err, tt.err, tt.index)
			}
		})
	}
}

func TestNewRouterEmpty(t *testing.T) {
	rt, err := NewRouter(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, buf := mustParse(t, get("a", "/"))
	if _, ok := rt.Route(r, buf); ok {
		t.Fatal("empty router matched")
	}
}

func TestRouteTLS(t *testing.T) {
	rt, err := NewRouter([]Rule{
		{Match: Match{Host: "a.example"}, Pool: 1},    // HTTP only: never a TLS connection
		{Match: Match{SNI: "a.example"}, Pool: 2},     // exact
		{Match: Match{SNI: "*.img.example"}, Pool: 3}, // wildcard
		{Match: Match{ALPN: "h2"}, Pool: 4},           // any name, HTTP/2 offered
		{Match: Match{SNI: "b.example", ALPN: "x"}, Pool: 5},
		{Pool: 6}, // catch-all: HTTP and TLS
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		exts [][]byte
		pool int
	}{
		{"exact name", [][]byte{sniExt(sniEntry(0, "a.example"))}, 2},
		{"name case and trailing dot", [][]byte{sniExt(sniEntry(0, "A.Example."))}, 2},
		{"wildcard", [][]byte{sniExt(sniEntry(0, "x.y.img.example"))}, 3},
		{"wildcard not apex", [][]byte{sniExt(sniEntry(0, "img.example"))}, 6},
		{"ALPN", [][]byte{sniExt(sniEntry(0, "c.example")), alpnExt("http/1.1", "h2")}, 4},
		{"name and ALPN both needed", [][]byte{sniExt(sniEntry(0, "b.example")), alpnExt("http/1.1")}, 6},
		{"name and ALPN", [][]byte{sniExt(sniEntry(0, "b.example")), alpnExt("x")}, 5},
		{"no name", nil, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			buf := helloWith(tt.exts...)
			var h ClientHello
			h.Reset(0)
			if st := h.Parse(buf); st != Done {
				t.Fatalf("Parse = %v", st)
			}
			if pool, ok := rt.RouteTLS(&h, buf); !ok || pool != tt.pool {
				t.Errorf("RouteTLS = %d, %v; want %d", pool, ok, tt.pool)
			}
		})
	}
	// And an HTTP request never matches a TLS rule.
	r, buf := mustParse(t, get("b.example", "/"))
	if pool, ok := rt.Route(r, buf); !ok || pool != 6 {
		t.Errorf("Route of an HTTP request = %d, %v; want the catch-all 6", pool, ok)
	}
	if _, err := NewRouter([]Rule{{Match: Match{Host: "a", SNI: "a"}}}); !errors.Is(err, ErrMixedRule) {
		t.Errorf("a rule with host and sni: %v, want ErrMixedRule", err)
	}
	if _, err := NewRouter([]Rule{{Match: Match{SNI: "*a.example"}}}); !errors.Is(err, ErrHostPattern) {
		t.Errorf("a bad sni pattern: %v, want ErrHostPattern", err)
	}
}
