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
