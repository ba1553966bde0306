package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"webswitch/bench/attack"
	benchsite "webswitch/bench/site"
)

// The slow clients scenario: more slow connections than the flow table
// holds, a short request timeout, and real clients at a steady rate.
const (
	slowConns          = 10000
	slowMaxFlows       = 6000
	slowRequestTimeout = 4 * time.Second
	// slowEndMargin is how long after request_timeout every slow
	// connection must have ended.
	slowEndMargin     = 2 * time.Second
	slowSuccessMin    = 0.99
	slowRealRate      = 200 // requests/s, a new connection each
	slowRealDuration  = 8 * time.Second
	slowRealTimeout   = 2 * time.Second
	slowRealConns     = 16
	slowByteInterval  = time.Second // one byte every 1-2 s
	slowByteJitter    = time.Second
	slowClientsShards = 2
)

// TestSlowClients is the reliability issue's slow clients item: 10,000
// connections from the client send a request head one byte every 1-2 s to
// a switch whose table holds 6,000 flows (3,000 a shard) and whose
// request_timeout is 4 s. Once the table is full, real clients fetch a
// page at 200 requests/s, a new connection each, for 8 s. A full table
// resets the connection that has waited longest for its head to take a
// new one (flows_evicted), so at least 99% of the real requests succeed;
// the table never holds more than max_flows; every slow connection ends,
// with a 408 or a reset, within request_timeout and 2 s.
func TestSlowClients(t *testing.T) {
	needRoot(t, "ip", "curl")
	www := t.TempDir()
	writeFile(t, filepath.Join(www, "index.html"), smallBody)
	writeFile(t, filepath.Join(www, "static", "small.txt"), smallBody)
	prefix := make([]byte, 2)
	rand.Read(prefix)
	s := startSiteConfig(t, benchsite.Config{
		Static1: www, Static2: www,
		Offloads: true, Shards: slowClientsShards, Prefix: "wsG" + hex.EncodeToString(prefix),
		SwitchKeys: fmt.Sprintf("request_timeout = %q\nmax_flows = %d\n", slowRequestTimeout, slowMaxFlows),
	}).Site
	hold := slowRequestTimeout + slowEndMargin
	res, err := attack.SlowClients(context.Background(), s, attack.SlowClientsConfig{
		Slowloris: attack.SlowlorisConfig{
			URL: vipURL + "/", Connections: slowConns,
			Interval: slowByteInterval, Jitter: slowByteJitter, Hold: hold,
		},
		MaxFlows: slowMaxFlows,
		Wsbench:  buildWsbench(t),
		URL:      vipURL + "/static/small.txt",
		Rate:     slowRealRate, Connections: slowRealConns,
		Duration: slowRealDuration, Timeout: slowRealTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(res, "", "  ")
	t.Logf("slow clients:\n%s", js)
	sl, l := res.Slowloris, res.Load
	t.Logf("slow connections: %d opened in %.2f s (%d failed), %d bytes sent; ended: answered %v, reset %d, closed %d, other error %d, still open after %v %d; lifetime s p50 %.2f p99 %.2f max %.2f",
		sl.Opened, sl.OpenSeconds, sl.ConnectFailed, sl.BytesSent, sl.Answered, sl.Reset, sl.Closed, sl.Failed, hold, sl.Open,
		sl.Lifetime.P50, sl.Lifetime.P99, sl.Lifetime.Max)
	t.Logf("switch: table full (%d flows a shard) %.2f s after the first slow connect, full in %d of %d samples while the real clients ran; at most %d active flows (%d in a shard); %d evicted, %d refused (table_full), %d answered 408, %d RSTs",
		res.ShardLimit, res.TableFullAfter, res.FullSamples, res.Samples, res.MaxActiveFlows, res.MaxShardActiveFlows,
		res.FlowsEvicted, res.TableFullDrops, res.RequestTimeouts, res.Resets)
	t.Logf("real clients: %d requests, errors %v in %.1f s (%.0f req/s): %.2f %% succeeded; latency ms p50 %.2f p99 %.2f max %.2f",
		l.Requests, l.Errors, l.Seconds, l.RPS, 100*res.Success, l.Latency.P50, l.Latency.P99, l.Latency.Max)

	if sl.Opened != slowConns || sl.ConnectFailed != 0 {
		t.Errorf("%d slow connections opened, %d failed; want all %d", sl.Opened, sl.ConnectFailed, slowConns)
	}
	if sl.Open != 0 || sl.Closed != 0 || sl.Failed != 0 || len(sl.Answered) > 1 || sl.Answered[408]+sl.Reset != sl.Opened {
		t.Errorf("slow connections ended otherwise than with a 408 or a reset within %v: %+v", hold, sl)
	}
	if res.FullSamples == 0 {
		t.Errorf("no sample found the table full while the real clients ran: the scenario tested nothing")
	}
	if l.Requests == 0 || res.Success < slowSuccessMin {
		t.Errorf("%.2f %% of %d real requests succeeded, want at least %.0f %%", 100*res.Success, l.Requests, 100*slowSuccessMin)
	}
	if res.MaxShardActiveFlows > int64(res.ShardLimit) || res.MaxActiveFlows > slowMaxFlows {
		t.Errorf("active flows reached %d (%d in a shard), over max_flows %d (%d a shard)",
			res.MaxActiveFlows, res.MaxShardActiveFlows, slowMaxFlows, res.ShardLimit)
	}
	// Every reset a slow connection saw is an eviction or a refusal, each
	// of which the switch counted and sent a RST for; every 408 it saw,
	// the switch counted.
	if res.FlowsEvicted == 0 || uint64(sl.Reset) > res.FlowsEvicted+res.TableFullDrops || res.Resets < res.FlowsEvicted+res.TableFullDrops {
		t.Errorf("%d slow connections reset; the switch evicted %d flows, refused %d and sent %d RSTs",
			sl.Reset, res.FlowsEvicted, res.TableFullDrops, res.Resets)
	}
	if uint64(sl.Answered[408]) > res.RequestTimeouts {
		t.Errorf("%d slow connections got a 408, the switch counted %d", sl.Answered[408], res.RequestTimeouts)
	}
}
