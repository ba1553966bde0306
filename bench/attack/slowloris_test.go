package attack

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSlowConn drives one slow connection over an in-memory pipe: the
// server's side reads everything the client sends and, once it has a
// number of bytes, ends the connection as each case says.
func TestSlowConn(t *testing.T) {
	const head = "GET / HTTP/1.1\r\nHost: x\r\n"
	tests := []struct {
		name   string
		hold   time.Duration
		after  int  // the server acts after this many bytes; -1: never
		cancel bool // it ends the context instead of answering
		answer string
		end    slowEnd
		status int
	}{
		{name: "answered", after: 3, answer: "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", end: endAnswered, status: 408},
		{name: "not HTTP", after: 1, answer: "nonsense, not a status line", end: endAnswered},
		{name: "closed", after: 2, end: endClosed},
		{name: "held", after: -1, hold: 30 * time.Millisecond, end: endOpen},
		{name: "context ends", after: 4, cancel: true, end: endOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan []byte, 1)
			reached := make(chan struct{})
			go func() {
				var b []byte
				var one [1]byte
				for {
					if _, err := server.Read(one[:]); err != nil {
						break
					}
					if b = append(b, one[0]); len(b) == tt.after {
						close(reached)
					}
				}
				got <- b
			}()
			go func() {
				select {
				case <-reached:
				case <-ctx.Done():
					return
				}
				if tt.cancel {
					cancel()
					return
				}
				if tt.answer != "" {
					io.WriteString(server, tt.answer)
				}
				server.Close()
			}()
			cfg := SlowlorisConfig{Interval: time.Millisecond, Hold: tt.hold}
			o := slowConn(ctx, client, head, &cfg)
			server.Close()
			sent := <-got
			if o.end != tt.end || o.status != tt.status || o.sent != uint64(len(sent)) || len(sent) < tt.after {
				t.Errorf("outcome %+v (the server read %d bytes), want end %d, status %d, at least %d bytes sent", o, len(sent), tt.end, tt.status, tt.after)
			}
			for i, b := range sent {
				if b != headByte(head, uint64(i)) {
					t.Fatalf("the server read %q, not the start of the endless head", sent)
				}
			}
		})
	}
}

// TestHeadByte: the head starts with the request line and Host and then
// goes on with header lines, never ending.
func TestHeadByte(t *testing.T) {
	addr, head, err := slowTarget("http://198.18.0.100/a?b=1")
	if err != nil {
		t.Fatal(err)
	}
	if addr != "198.18.0.100:80" || !strings.HasPrefix(head, "GET /a?b=1 HTTP/1.1\r\nHost: 198.18.0.100\r\n") {
		t.Fatalf("target %q, head %q", addr, head)
	}
	var b []byte
	for off := range uint64(len(head) + 5*len(slowFiller)) {
		b = append(b, headByte(head, off))
	}
	if want := head + strings.Repeat(slowFiller, 5); string(b) != want || strings.Contains(want, "\r\n\r\n") {
		t.Errorf("head bytes %q, want %q without an end", b, want)
	}
	for _, bad := range []string{"https://x/", "http:///path", "::"} {
		if _, _, err := slowTarget(bad); err == nil {
			t.Errorf("slowTarget(%q) accepted it", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]int{
		"HTTP/1.1 408 Request Timeout": 408,
		"HTTP/1.0 200":                 200,
		"HTTP/1.1 40":                  0,
		"HTTP/1.1 4x8 ":                0,
		"SSH-2.0-OpenSSH_9":            0,
	} {
		if got := parseStatus([]byte(in)); got != want {
			t.Errorf("parseStatus(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestLifetimeOf(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*100*time.Millisecond)
	}
	if got, want := lifetimeOf(d), (Lifetime{P50: 5, P99: 9.9, Max: 10}); got != want {
		t.Errorf("lifetimeOf = %+v, want %+v", got, want)
	}
	if got := lifetimeOf(nil); got != (Lifetime{}) {
		t.Errorf("lifetimeOf(nil) = %+v", got)
	}
}

// TestSlowClientsCounters: the samples and sums SlowClients makes of the
// shards' counters as site.ShardCounters returns them.
func TestSlowClientsCounters(t *testing.T) {
	shards := func(a0, a1, full0, evicted float64) map[int]map[string]any {
		return map[int]map[string]any{
			0: {"active_flows": a0, "flows_evicted": evicted, "drops": map[string]any{"table_full": full0}},
			1: {"active_flows": a1, "http_errors": map[string]any{"408": 7.0}},
		}
	}
	res := SlowClientsResult{ShardLimit: 3}
	if res.sample(shards(3, 2, 0, 0)) {
		t.Error("a table with room reported full")
	}
	if !res.sample(shards(3, 3, 1, 5)) {
		t.Error("full tables not reported full")
	}
	res.sample(shards(1, 1, 0, 0))
	if res.MaxActiveFlows != 6 || res.MaxShardActiveFlows != 3 {
		t.Errorf("max active flows %d, in a shard %d; want 6 and 3", res.MaxActiveFlows, res.MaxShardActiveFlows)
	}
	c := shards(0, 0, 4, 5)
	for _, tt := range []struct {
		group, key string
		want       float64
	}{{"", "flows_evicted", 5}, {"drops", "table_full", 4}, {"http_errors", "408", 7}, {"drops", "no_flow", 0}} {
		if got := sumIn(c, tt.group, tt.key); got != tt.want {
			t.Errorf("sumIn(%q, %q) = %v, want %v", tt.group, tt.key, got, tt.want)
		}
	}
}
