package failover

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeepalivedConfig checks the pair's configurations: node 1 the master
// with the higher priority, the advert interval in seconds, the VIP on
// eth0; and that keepalived accepts them when it is installed.
func TestKeepalivedConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   int
		advert time.Duration
		want   []string
	}{
		{"master", 1, time.Second, []string{"router_id sw\n", "state MASTER", "priority 150", "advert_int 1\n", "198.18.0.100/24 dev eth0", "vrrp_version 3"}},
		{"backup", 2, time.Second, []string{"router_id sw2\n", "state BACKUP", "priority 100", "advert_int 1\n"}},
		{"sub-second adverts", 2, 250 * time.Millisecond, []string{"advert_int 0.25\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := KeepalivedConfig(tc.node, tc.advert)
			for _, w := range tc.want {
				if !strings.Contains(conf, w) {
					t.Errorf("keepalived.conf lacks %q:\n%s", w, conf)
				}
			}
			if _, err := exec.LookPath("keepalived"); err != nil {
				return
			}
			path := filepath.Join(t.TempDir(), "keepalived.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("keepalived", "--config-test", "--use-file", path).CombinedOutput()
			if err != nil {
				t.Errorf("keepalived --config-test: %v\n%s", err, out)
			}
		})
	}
}

// TestOutage checks the time until new connections succeed again for good,
// from probes around a kill at t=0.
func TestOutage(t *testing.T) {
	kill := time.Unix(1000, 0)
	at := func(startMs, tookMs int, ok bool) sample {
		return sample{start: kill.Add(time.Duration(startMs) * time.Millisecond), took: time.Duration(tookMs) * time.Millisecond, ok: ok}
	}
	for _, tc := range []struct {
		name      string
		samples   []sample
		want      time.Duration
		failed    int
		recovered bool
	}{
		{"none failed", []sample{at(-100, 2, true), at(10, 2, true)}, 0, 0, true},
		{"failed before the kill only", []sample{at(-300, 200, false), at(10, 2, true)}, 0, 0, true},
		{"recovered after failures", []sample{at(0, 200, false), at(250, 2, true), at(300, 200, false), at(550, 3, true), at(600, 2, true)}, 553 * time.Millisecond, 2, true},
		{"never recovered", []sample{at(0, 200, false), at(250, 200, false)}, 450 * time.Millisecond, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, failed, recovered := outage(tc.samples, kill)
			if d != tc.want || failed != tc.failed || recovered != tc.recovered {
				t.Errorf("outage = %v, %d failed, recovered %v; want %v, %d, %v", d, failed, recovered, tc.want, tc.failed, tc.recovered)
			}
		})
	}
}
