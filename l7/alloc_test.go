package l7

import (
	"strings"
	"testing"
)

// browserHead is a typical browser request head (about 500 bytes).
const browserHead = "GET /static/app.js?v=1234 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/index.html\r\n" +
	"Cookie: session=0123456789abcdef; shard=b; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"\r\n"

var benchRules = []Rule{
	{Match: Match{Host: "api.example.com"}, Pool: 0},
	{Match: Match{Host: "*.cdn.example.com"}, Pool: 1},
	{Match: Match{Header: "X-Canary", HeaderValue: "yes", HeaderHasValue: true}, Pool: 2},
	{Match: Match{PathRegex: `^/static/[a-z]+\.css$`}, Pool: 6}, // evaluated, no match: no allocation either
	{Match: Match{Method: "POST"}, Pool: 7},
	{Match: Match{Host: "www.example.com", PathPrefix: "/api/"}, Pool: 3},
	{Match: Match{Host: "www.example.com", Cookie: "shard", CookieValue: "b", CookieHasValue: true}, Pool: 4},
	{Pool: 5},
}

func TestNoAllocs(t *testing.T) {
	buf := []byte(browserHead)
	rt, err := NewRouter(benchRules)
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	pool := Pool{Backends: []int{0, 1, 2, 3}}
	var cursor uint32
	up := func(b int) bool { return b != 2 }
	tests := []struct {
		name string
		fn   func()
	}{
		{name: "Parse", fn: func() {
			r.Reset(0)
			if r.Parse(buf) != Done {
				t.Fatal("not Done")
			}
		}},
		{name: "Parse by segments", fn: func() {
			r.Reset(0)
			for n := 100; n < len(buf); n += 100 {
				r.Parse(buf[:n])
			}
			if r.Parse(buf) != Done {
				t.Fatal("not Done")
			}
		}},
		{name: "Route", fn: func() {
			if p, ok := rt.Route(&r, buf); !ok || p != 4 {
				t.Fatalf("Route = %d, %v", p, ok)
			}
		}},
		{name: "Header", fn: func() {
			if _, ok := r.Header(buf, "sec-fetch-site"); !ok {
				t.Fatal("no header")
			}
		}},
		{name: "Cookie", fn: func() {
			if _, ok := r.Cookie(buf, "theme"); !ok {
				t.Fatal("no cookie")
			}
		}},
		{name: "PickRoundRobin", fn: func() {
			if _, ok := pool.PickRoundRobin(&cursor, up); !ok {
				t.Fatal("none up")
			}
		}},
		{name: "ErrorResponse", fn: func() {
			if len(ErrorResponse(503)) == 0 {
				t.Fatal("empty response")
			}
		}},
	}
	r.Reset(0)
	r.Parse(buf)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	buf := []byte(browserHead)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Reset(0)
		if r.Parse(buf) != Done {
			b.Fatal("not Done")
		}
	}
}

// BenchmarkParseSegments feeds the head as it arrives in small segments.
func BenchmarkParseSegments(b *testing.B) {
	buf := []byte(browserHead)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Reset(0)
		for n := 64; n < len(buf); n += 64 {
			r.Parse(buf[:n])
		}
		if r.Parse(buf) != Done {
			b.Fatal("not Done")
		}
	}
}

func BenchmarkParseMaxHeaders(b *testing.B) {
	buf := []byte("GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Some-Header: some value\r\n", MaxHeaders-1) + "\r\n")
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Reset(0)
		if r.Parse(buf) != Done {
			b.Fatal("not Done")
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	buf := []byte(browserHead)
	rt, err := NewRouter(benchRules)
	if err != nil {
		b.Fatal(err)
	}
	var r Request
	r.Reset(0)
	r.Parse(buf)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rt.Route(&r, buf); !ok {
			b.Fatal("no route")
		}
	}
}

func BenchmarkPickRoundRobin(b *testing.B) {
	p := Pool{Backends: []int{0, 1, 2, 3, 4, 5, 6, 7}}
	var cursor uint32
	up := func(backend int) bool { return backend%4 != 0 }
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.PickRoundRobin(&cursor, up); !ok {
			b.Fatal("none up")
		}
	}
}

func BenchmarkErrorResponse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if len(ErrorResponse(431)) == 0 {
			b.Fatal("empty")
		}
	}
}
