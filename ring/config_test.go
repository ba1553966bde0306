package ring

import "testing"

// TestZeroConfigDefaults checks that a Config with only its interface set
// resolves to the switch's default ring, TPACKET_V2 (conf's
// switch.ring_version default), with the V2 frame size.
func TestZeroConfigDefaults(t *testing.T) {
	c := Config{Interface: "eth0"}.withDefaults()
	if c.Version != 2 || c.FrameSize != DefaultV2FrameSize || c.NumBlocks != DefaultNumBlocks {
		t.Errorf("zero Config resolves to version %d, frame size %d, %d slots; want 2, %d, %d",
			c.Version, c.FrameSize, c.NumBlocks, DefaultV2FrameSize, DefaultNumBlocks)
	}
	if err := c.check(4096); err != nil {
		t.Errorf("defaults do not pass check: %v", err)
	}
}
