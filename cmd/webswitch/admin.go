package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"webswitch/shard"
)

// dataPath is what the admin API reads from the switch (a *shard.Switch;
// a fake in tests).
type dataPath interface {
	Health() []string
	Draining() bool
	Snapshots() []shard.Snapshot
	Config() *shard.Config
	Flows(ctx context.Context, f shard.FlowFilter, offset, limit int) ([]shard.FlowInfo, int, error)
	Capture(ctx context.Context, n int, write func(shard.CapturedFrame) error) (int, uint64, error)
}

// process is what the admin API asks of the daemon around the data path
// (an *upgrader; a fake in tests): who it is, and the in-place upgrade.
type process interface {
	Identity() Identity
	Upgrade() (check string, err error)
}

// UpgradeAnswer is the answer of a POST /upgrade that the new binary's
// check accepted: the process stops and executes it once this is sent.
type UpgradeAnswer struct {
	Status string   `json:"status"` // "upgrading"
	From   Identity `json:"from"`
	Check  string   `json:"check"` // what the new binary's -check printed
}

// Limits of the admin API.
const (
	flowsDefaultLimit = 100
	flowsMaxLimit     = 10000
	captureMax        = 1_000_000
	captureTimeout    = 10 * time.Minute // a capture that waits for traffic longer than this ends
	pcapSnapLen       = 65536
)

// adminHandler serves the admin API: /metrics, /healthz, /readyz,
// /backends, /flows, /reload (POST), /capture, /version and /upgrade
// (POST), and /bgp with a BGP speaker (bgp not nil).
func adminHandler(dp dataPath, reload func() error, proc process, bgp bgpStatus) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(dp), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	if bgp != nil {
		reg.MustRegister(newBGPCollector(bgp))
		mux.HandleFunc("GET /bgp", func(w http.ResponseWriter, r *http.Request) {
			st, err := bgp.Status(r.Context())
			if err != nil {
				httpError(w, http.StatusServiceUnavailable, "%v", err)
				return
			}
			writeJSON(w, http.StatusOK, st)
		})
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if problems := dp.Health(); len(problems) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy", "problems": problems})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if dp.Draining() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining", "flows": activeFlows(dp.Snapshots())})
			return
		}
		missing := shard.PoolsWithoutBackend(dp.Config(), dp.Snapshots())
		if len(missing) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "pools_without_backend": missing})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /backends", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, backendStatus(dp.Config(), dp.Snapshots()))
	})
	mux.HandleFunc("GET /flows", func(w http.ResponseWriter, r *http.Request) {
		serveFlows(w, r, dp)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		if err := reload(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"status": "refused", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
	})
	mux.HandleFunc("GET /capture", func(w http.ResponseWriter, r *http.Request) {
		serveCapture(w, r, dp)
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, proc.Identity())
	})
	mux.HandleFunc("POST /upgrade", func(w http.ResponseWriter, r *http.Request) {
		from := proc.Identity()
		check, err := proc.Upgrade()
		switch {
		case errors.Is(err, errUpgradeBusy) || errors.Is(err, errUpgradeDraining):
			writeJSON(w, http.StatusConflict, map[string]string{"status": "refused", "error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadRequest, map[string]string{"status": "refused", "error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, UpgradeAnswer{Status: "upgrading", From: from, Check: check})
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// BackendStatus is one back-end in /backends.
type BackendStatus struct {
	Name           string `json:"name"`
	Address        string `json:"address"`
	Agent          string `json:"agent"`
	Removed        bool   `json:"removed,omitempty"` // taken out by a reload; flows may still use it
	UsableShards   int    `json:"usable_shards"`     // shards that may hand new connections to it
	Shards         int    `json:"shards"`
	ActiveFlows    int64  `json:"active_flows"` // spliced to it
	HandoffsOK     uint64 `json:"handoffs_ok"`
	HandoffsFailed uint64 `json:"handoffs_failed"`
	Downs          uint64 `json:"downs"`
}

func backendStatus(cfg *shard.Config, snaps []shard.Snapshot) []BackendStatus {
	out := make([]BackendStatus, len(cfg.Backends))
	for i, b := range cfg.Backends {
		out[i] = BackendStatus{
			Name: b.Name, Address: netip.AddrFrom4(b.IP).String(), Agent: b.Agent.String(),
			Removed: b.Removed, Shards: len(snaps),
		}
		for _, s := range snaps {
			if i >= len(s.Backends) {
				continue
			}
			sb := s.Backends[i]
			if sb.Usable {
				out[i].UsableShards++
			}
			out[i].ActiveFlows += sb.Active
			out[i].HandoffsOK += sb.HandoffsOK
			out[i].HandoffsFailed += sb.HandoffsFailed
			out[i].Downs += sb.Downs
		}
	}
	return out
}

// FlowsPage is the answer of /flows.
type FlowsPage struct {
	Total  int              `json:"total"` // flows matching the filter
	Offset int              `json:"offset"`
	Flows  []shard.FlowInfo `json:"flows"`
}

// serveFlows answers /flows?client=IP[:PORT]&backend=NAME&state=S&offset=N&limit=N.
func serveFlows(w http.ResponseWriter, r *http.Request, dp dataPath) {
	q := r.URL.Query()
	var f shard.FlowFilter
	if c := q.Get("client"); c != "" {
		if ap, err := netip.ParseAddrPort(c); err == nil {
			f.Client, f.Port = ap.Addr(), ap.Port()
		} else if a, err := netip.ParseAddr(c); err == nil {
			f.Client = a
		} else {
			httpError(w, http.StatusBadRequest, "client %q is not an address or address:port", c)
			return
		}
	}
	f.Backend, f.State = q.Get("backend"), q.Get("state")
	switch f.State {
	case "", "request", "handing_off", "responding", "spliced":
	default:
		httpError(w, http.StatusBadRequest, "state %q is not request, handing_off, responding or spliced", f.State)
		return
	}
	offset, err := intParam(q.Get("offset"), 0, 0, 1<<30)
	if err != nil {
		httpError(w, http.StatusBadRequest, "offset: %v", err)
		return
	}
	limit, err := intParam(q.Get("limit"), flowsDefaultLimit, 1, flowsMaxLimit)
	if err != nil {
		httpError(w, http.StatusBadRequest, "limit: %v", err)
		return
	}
	flows, total, err := dp.Flows(r.Context(), f, offset, limit)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, FlowsPage{Total: total, Offset: offset, Flows: flows})
}

// intParam parses a query parameter in [lo, hi], def when empty.
func intParam(s string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a number from %d to %d", s, lo, hi)
	}
	return n, nil
}

// serveCapture answers /capture?n=N with a pcap file of the next N frames
// the switch receives.
func serveCapture(w http.ResponseWriter, r *http.Request, dp dataPath) {
	n, err := intParam(r.URL.Query().Get("n"), 0, 1, captureMax)
	if err != nil {
		httpError(w, http.StatusBadRequest, "n: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Trailer", missedTrailer)
	if err := writePcapHeader(w, pcapSnapLen); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), captureTimeout)
	defer cancel()
	flusher, _ := w.(http.Flusher)
	_, missed, err := dp.Capture(ctx, n, func(f shard.CapturedFrame) error {
		return writePacket(w, flusher, f)
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return // the client went away
	}
	w.Header().Set(missedTrailer, strconv.FormatUint(missed, 10))
}

// missedTrailer is the HTTP trailer of /capture that counts the frames the
// capture missed because its reader was slower than the traffic.
const missedTrailer = "X-Webswitch-Missed"

func writePacket(w io.Writer, flusher http.Flusher, f shard.CapturedFrame) error {
	err := writePcapRecord(w, f.Time, f.Data, pcapSnapLen)
	if err == nil && flusher != nil {
		flusher.Flush()
	}
	return err
}

// activeFlows returns the flows in every shard's table.
func activeFlows(snaps []shard.Snapshot) int64 {
	var n int64
	for _, s := range snaps {
		n += s.ActiveFlows
	}
	return n
}
