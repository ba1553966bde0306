package main

import (
	"flag"
	"fmt"
	"io"

	"webswitch/bench/pktrate"
	"webswitch/bench/site"
)

// runPPS runs "wsbench pps": the packet-rate bench (bench/pktrate) on a
// switch in a fresh testbed, torn down at the end or on SIGINT/SIGTERM.
func runPPS(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory with the webswitch and handoffd binaries")
	flows := fs.Int("flows", pktrate.DefaultFlows, "spliced flows whose ACKs are replayed")
	d := fs.Duration("d", pktrate.DefaultDuration, "how long to send")
	rate := fs.Float64("rate", 0, "frames per second to offer; 0: as fast as the sender can")
	batch := fs.Int("batch", pktrate.DefaultBatch, fmt.Sprintf("frames per sendmmsg call (1-%d)", pktrate.MaxBatch))
	shards := fs.Int("shards", 1, "switch shards")
	prefix := fs.String("prefix", "", "testbed namespace prefix (default: ws, random hex digits, p and the process id)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *flows < 1 || *d <= 0 || *rate < 0 ||
		*batch < 1 || *batch > pktrate.MaxBatch || *shards < 1 {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	cfg := pktrate.Config{Flows: *flows, Duration: *d, Rate: *rate, Batch: *batch}
	return onSite(*bin, site.Config{Offloads: true, Shards: *shards, Prefix: *prefix}, pktrate.Files,
		func(s *site.Site) (pktrate.Result, error) { return pktrate.Run(s, cfg) }, *asJSON, stdout, printPPS)
}

// printPPS writes a short summary of a packet-rate run.
func printPPS(w io.Writer, r *pktrate.Result) {
	fmt.Fprintf(w, "%d spliced flows, %.2f s: offered %.0f frames/s (%d sent, %d send errors)\n",
		r.Flows, r.Seconds, r.OfferedFPS, r.Sent, r.SendErrors)
	fmt.Fprintf(w, "reached the switch's eth0: %d frames; the back-ends' eth0: %d frames\n",
		r.SwitchRxFrames, r.BackendRxFrames)
	for _, sh := range r.Shards {
		fmt.Fprintf(w, "shard %d: forwarded %.0f frames/s; in %d, forwarded %d, ring drops %d, tx dropped %d\n",
			sh.Shard, sh.FPS, sh.FramesIn, sh.Forwarded, sh.RingDrops, sh.TxDropped)
	}
	fmt.Fprintf(w, "forwarded: %.0f frames/s in all\n", r.ForwardedFPS)
	fmt.Fprintf(w, "CPU while sending, in cores of %d: webswitch %.2f, sender thread %.2f, whole machine %.2f\n",
		r.NumCPU, r.SwitchCPU, r.SenderCPU, r.MachineCPU)
}
