// Package load is wsbench's HTTP load generator: many concurrent clients,
// keep-alive or a new connection per request, closed loop (fixed
// concurrency) or open loop (fixed request rate, latency measured from the
// intended start so that a slow server cannot hide it), with an HDR
// latency histogram.
package load

import (
	"encoding/json"
	"fmt"
	"os"
)

// Result is the outcome of one load run: what `wsbench load -json` prints
// and what the bench report is made of.
type Result struct {
	URLs        []string          `json:"urls"` // connections are spread over them in turn
	Mode        string            `json:"mode"` // ModeClosed or ModeOpen
	KeepAlive   bool              `json:"keep_alive"`
	Connections int               `json:"connections"`    // concurrency (closed) or most connections at once (open)
	Rate        float64           `json:"rate,omitempty"` // requests/s asked for (open loop)
	Seconds     float64           `json:"seconds"`        // measured time, warm-up excluded
	Requests    uint64            `json:"requests"`       // completed: a 2xx status and the whole body
	Errors      map[string]uint64 `json:"errors,omitempty"`
	Connects    uint64            `json:"connects"`   // TCP connections opened
	BodyBytes   uint64            `json:"body_bytes"` // response body bytes of completed requests
	RPS         float64           `json:"rps"`        // Requests / Seconds
	MBps        float64           `json:"mbps"`       // BodyBytes / Seconds / 1e6
	Latency     Latency           `json:"latency_ms"`
}

// Modes of a run.
const (
	ModeClosed = "closed"
	ModeOpen   = "open"
)

// Kinds of errors, the keys of Result.Errors.
const (
	ErrConnect   = "connect"    // the TCP connection could not be opened
	ErrTimeout   = "timeout"    // no complete response within the request timeout
	ErrWrite     = "write"      // sending the request failed
	ErrRead      = "read"       // the connection failed or closed during the response
	ErrParse     = "parse"      // the response head could not be parsed
	ErrStatus    = "status"     // a status other than 2xx
	ErrShortBody = "short_body" // the body ended before its Content-Length
	ErrLate      = "late"       // open loop: a request could not start on time (all connections busy)
)

// Latency are response-time percentiles in milliseconds, from the request's
// (intended) start to the last byte of the body.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ReadResult reads the Result that "wsbench load -json" wrote to the file
// at path (its log, when a bench ran it in a namespace).
func ReadResult(path string) (Result, error) {
	var r Result
	out, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("load: the output of wsbench load (%s): %w", path, err)
	}
	return r, nil
}
