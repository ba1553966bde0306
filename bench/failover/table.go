package failover

import (
	"fmt"
	"strings"
)

// Table returns the two trials side by side as a Markdown table.
func Table(r *Result) string {
	var b strings.Builder
	c := &r.Config
	death := "its processes killed (SIGKILL)"
	if c.Death == DeathHost {
		death = "cut off the LAN, its processes killed"
	}
	fmt.Fprintf(&b, "| active node dies %.1f s into the load: %s | HAProxy pair, keepalived (advert_int %v) | webswitch, 2 switches (BGP) |\n| --- | --- | --- |\n",
		c.KillAfter.Seconds(), death, c.Advert)
	row := func(name string, f func(t *Trial) string) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, f(&r.HAProxy), f(&r.Webswitch))
	}
	row(fmt.Sprintf("downloads broken (10 MiB at %.0f MiB/s, SHA-256 checked)", float64(c.DownloadRate)/(1<<20)), func(t *Trial) string {
		return fmt.Sprintf("%d of %d", t.DownloadsBroken, t.Downloads)
	})
	row(fmt.Sprintf("small requests failed (%g/s, new connections, %v limit)", c.Rate, c.Timeout), func(t *Trial) string {
		return fmt.Sprintf("%d of %d", t.RequestsFailed, t.RequestsFailed+t.Requests)
	})
	row("longest small request that succeeded", func(t *Trial) string { return fmt.Sprintf("%.0f ms", t.LongestMs) })
	row("new connections succeed again after", func(t *Trial) string {
		if !t.Recovered {
			return fmt.Sprintf("not within %.1f s", t.RecoverySecs)
		}
		return fmt.Sprintf("%.2f s (%d of %d probes failed)", t.RecoverySecs, t.ProbesFailed, t.Probes)
	})
	return b.String()
}
