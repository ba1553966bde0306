package handoff

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"
)

func testIDs(n int) []FlowID {
	ids := make([]FlowID, n)
	for i := range ids {
		ids[i] = FlowID{
			Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), uint16(40000+i)),
			VIP:    netip.MustParseAddrPort("198.18.0.10:80"),
		}
	}
	return ids
}

// TestLookupBodyGolden pins the LOOKUP layout of this Version.
func TestLookupBodyGolden(t *testing.T) {
	body, err := AppendLookupBody(nil, testIDs(2))
	if err != nil {
		t.Fatal(err)
	}
	want := "0402" + "c6120100" + "9c40" + "c612000a" + "0050" + "c6120101" + "9c41" + "c612000a" + "0050"
	if got := hex.EncodeToString(body); got != want {
		t.Fatalf("LOOKUP body %s, want %s", got, want)
	}
}

func TestLookupRoundTrip(t *testing.T) {
	for _, n := range []int{1, 7, MaxLookup} {
		ids := testIDs(n)
		body, err := AppendLookupBody([]byte("prefix"), ids)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeLookupBody(body[len("prefix"):], nil)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("%d: decoded %v, want %v", n, got, ids)
		}
	}
}

func TestLookupBodyErrors(t *testing.T) {
	v6 := testIDs(1)
	v6[0].Client = netip.MustParseAddrPort("[2001:2::1]:80")
	for name, ids := range map[string][]FlowID{"none": nil, "too many": testIDs(MaxLookup + 1), "IPv6": v6} {
		if b, err := AppendLookupBody([]byte{9}, ids); err != ErrMalformed || !bytes.Equal(b, []byte{9}) {
			t.Errorf("%s: AppendLookupBody = %x, %v; want [09], ErrMalformed", name, b, err)
		}
	}
	good, _ := AppendLookupBody(nil, testIDs(3))
	for _, tt := range []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"family 6", append([]byte{6}, good[1:]...), ErrMalformed},
		{"count 0", []byte{familyIPv4, 0}, ErrMalformed},
		{"count above MaxLookup", []byte{familyIPv4, MaxLookup + 1}, ErrMalformed},
		{"short", good[:len(good)-1], ErrTruncated},
		{"trailing byte", append(slices.Clone(good), 0), ErrMalformed},
	} {
		if _, err := DecodeLookupBody(tt.body, nil); err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestOwners(t *testing.T) {
	want := []Owner{{SockEstablished, 12}, {}, {SockTimeWait, NoIdle}}
	var body []byte
	for _, o := range want {
		body = AppendOwner(body, o)
	}
	if err := CheckOwners(body, len(want)); err != nil {
		t.Fatal(err)
	}
	for i, o := range want {
		if got := OwnerAt(body, i); got != o {
			t.Errorf("entry %d: %+v, want %+v", i, got, o)
		}
	}
	if err := CheckOwners(body, 2); err != ErrMalformed {
		t.Errorf("count 2 for 3 entries: %v, want ErrMalformed", err)
	}
	listen := AppendOwner(nil, Owner{State: 10}) // LISTEN owns no connection
	if err := CheckOwners(listen, 1); err != ErrMalformed {
		t.Errorf("LISTEN: %v, want ErrMalformed", err)
	}
}

func TestOwnerRank(t *testing.T) {
	// Each owner outranks the next.
	order := []Owner{
		{SockEstablished, 5},
		{SockCloseWait, 900},
		{SockFinWait1, 0},
		{},
	}
	for i := 1; i < len(order); i++ {
		if order[i-1].Rank() <= order[i].Rank() {
			t.Errorf("%+v does not outrank %+v", order[i-1], order[i])
		}
	}
	for _, o := range []Owner{{SockFinWait2, 1}, {SockTimeWait, NoIdle}, {SockLastAck, 1}, {SockClosing, 1}} {
		if !o.Owns() || o.Live() || o.Rank() != 0 {
			t.Errorf("%+v: owns %v, live %v, rank %d; want a socket that is not live, rank 0", o, o.Owns(), o.Live(), o.Rank())
		}
	}
	if (Owner{}).Owns() || (Owner{}).Live() {
		t.Error("SockNone owns nothing")
	}
}

func TestLookupCodecNoAllocs(t *testing.T) {
	ids := testIDs(MaxLookup)
	buf := make([]byte, 0, lookupFixedLen+MaxLookup*LookupEntryLen)
	out := make([]FlowID, 0, MaxLookup)
	if n := testing.AllocsPerRun(100, func() {
		body, _ := AppendLookupBody(buf[:0], ids)
		out, _ = DecodeLookupBody(body, out[:0])
	}); n != 0 {
		t.Errorf("%v allocations per LOOKUP encode and decode, want 0", n)
	}
}

func FuzzDecodeLookupBody(f *testing.F) {
	good, _ := AppendLookupBody(nil, testIDs(3))
	f.Add(good)
	f.Add([]byte{familyIPv4, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := DecodeLookupBody(body, nil)
		if err != nil {
			return
		}
		again, err := AppendLookupBody(nil, ids)
		if err != nil || !bytes.Equal(again, body) {
			t.Fatalf("decoded %v re-encodes to %x, %v; want %x", ids, again, err, body)
		}
	})
}
