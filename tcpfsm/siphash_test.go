package tcpfsm

import (
	"encoding/binary"
	"testing"
)

// TestSipHashVectors checks sipHash24 against the reference vectors of the
// SipHash paper (key 00..0f, message 00..len-1) for lengths that are whole
// words, the only ones the switch hashes.
func TestSipHashVectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := sipKey(key)
	msg := make([]byte, 24)
	for i := range msg {
		msg[i] = byte(i)
	}
	words := make([]uint64, 3)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(msg[i*8:])
	}
	want := map[int]uint64{
		0:  0x726fdb47dd0e0e31,
		8:  0x93f5f5799a932462,
		16: 0x3f2acc7f57c29bdb,
	}
	for n, w := range want {
		if got := sipHash24(k0, k1, words[:n/8], n); got != w {
			t.Errorf("len %d: got %#x, want %#x", n, got, w)
		}
	}
}
