package shard

import (
	"testing"

	"webswitch/conf"
)

// TestFromConfRoutedVIP: with [bgp] the VIP is routed to the switch, and
// the neighbour resolver answers no ARP for it; without, it does.
func TestFromConfRoutedVIP(t *testing.T) {
	for _, tt := range []struct {
		file   string
		routed bool
	}{
		{"../conf/testdata/switch-minimal.toml", false},
		{"../conf/testdata/switch-bgp.toml", true},
	} {
		c, err := conf.LoadSwitch(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		c.Switch.Interface = "lo" // FromConf reads the interface's MTU
		cfg, err := FromConf(c, []byte("0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		if nc := neighConfig(cfg); cfg.RoutedVIP != tt.routed || nc.AnswerVIP == tt.routed {
			t.Errorf("%s: RoutedVIP %v, resolver answers ARP for the VIP %v; want routed %v", tt.file, cfg.RoutedVIP, nc.AnswerVIP, tt.routed)
		}
	}
}
