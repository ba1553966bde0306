package shard

import (
	"net/netip"

	"webswitch/tcpfsm"
	"webswitch/tcpfsm/header"
	"webswitch/tcpfsm/seqnum"
)

// send builds a frame for a segment the switch sends itself to the client
// and queues it.
func (s *Shard) send(t *tcpfsm.Tuple, dstMAC [6]byte, seg *tcpfsm.Seg) {
	s.emit(t.VIP, t.ClientIP, t.VIPPort, t.ClientPort, dstMAC, seg)
	s.C.FramesSent.Add(1)
	if seg.Flags&header.FlagRST != 0 {
		s.C.Resets.Add(1)
	}
}

// replayFIN sends the back-end, in the client's name, the FIN the switch
// took with the request (tcpfsm.Params.FIN): the re-created socket then
// reads the request and an end of file, as the client meant.
func (s *Shard) replayFIN(fl *flow, backendMAC [6]byte, p *tcpfsm.Params) {
	t := s.tuple(fl.key)
	wnd := p.SndWnd
	if p.Opts.WScaleOK {
		wnd >>= p.Opts.WScale
	}
	seg := tcpfsm.Seg{Seq: p.RcvNxt, Ack: p.ISS + 1, Flags: header.FlagFIN | header.FlagACK, Window: uint16(min(wnd, 0xFFFF))}
	s.emit(t.ClientIP, t.VIP, t.ClientPort, t.VIPPort, backendMAC, &seg)
	s.C.FINsReplayed.Add(1)
}

// emit builds the frame of a TCP segment from src to dst, sent to dstMAC
// from the switch's MAC, and queues it.
func (s *Shard) emit(src, dst [4]byte, sport, dport uint16, dstMAC [6]byte, seg *tcpfsm.Seg) {
	optLen := 0
	if seg.Flags&header.FlagSYN != 0 {
		optLen = header.SynAckOptionsLen
	}
	tcpLen := header.TCPMinLen + optLen + len(seg.Payload)
	ipLen := header.IPv4MinLen + tcpLen
	b := s.link.Buffer(s.vnetLen + header.EthernetLen + ipLen)
	clear(b[:s.vnetLen]) // no offload: a complete frame
	eth := header.Ethernet(b[s.vnetLen:])
	eth.Encode(dstMAC[:], s.mac[:], header.EtherTypeIPv4)
	s.ipID++
	ip := header.IPv4(eth[header.EthernetLen:])
	ip.Encode(src, dst, header.ProtocolTCP, ipLen, s.ipID)
	tcp := header.TCP(ip[header.IPv4MinLen:ipLen])
	tcp.Encode(&header.Fields{
		SrcPort: sport, DstPort: dport,
		Seq: uint32(seg.Seq), Ack: uint32(seg.Ack), Flags: seg.Flags, Window: seg.Window,
	}, optLen)
	if optLen > 0 {
		header.EncodeSynAckOptions(tcp[header.TCPMinLen:], seg.MSS, &seg.Syn, seg.WScale)
	}
	copy(tcp[header.TCPMinLen+optLen:], seg.Payload)
	tcp.SetChecksum(src, dst)
	s.link.Add(b)
}

// sendOut sends the segments in s.out for flow fl.
func (s *Shard) sendOut(fl *flow) {
	if s.out.N == 0 {
		return
	}
	t := s.tuple(fl.key)
	for k := range s.out.N {
		s.send(&t, fl.conn.clientMAC, &s.out.Segs[k])
	}
}

// reset answers a segment with a RST (RFC 9293 3.10.7.1: no connection).
func (s *Shard) reset(t *tcpfsm.Tuple, dstMAC [6]byte, tcp header.TCP) {
	seg := tcpfsm.Seg{Seq: 0, Flags: header.FlagRST}
	if tcp.Flags()&header.FlagACK != 0 {
		seg.Seq = seqnum.Value(tcp.Ack())
	} else {
		// SEG.SEQ + SEG.LEN, where SYN and FIN count one each: a SYN's
		// sender accepts the reset only if it acknowledges the SYN.
		n := uint32(len(tcp.Payload()))
		if tcp.Flags()&header.FlagSYN != 0 {
			n++
		}
		if tcp.Flags()&header.FlagFIN != 0 {
			n++
		}
		seg.Flags |= header.FlagACK
		seg.Ack = seqnum.Value(tcp.Seq() + n)
	}
	s.send(t, dstMAC, &seg)
}

func (s *Shard) tuple(key uint64) tcpfsm.Tuple {
	return tcpfsm.Tuple{
		ClientIP:   [4]byte{byte(key >> 56), byte(key >> 48), byte(key >> 40), byte(key >> 32)},
		ClientPort: uint16(key >> 16),
		VIP:        s.cfg.VIP,
		VIPPort:    uint16(key),
	}
}

func (s *Shard) addrs(key uint64) (client, vip netip.AddrPort) {
	t := s.tuple(key)
	return netip.AddrPortFrom(netip.AddrFrom4(t.ClientIP), t.ClientPort),
		netip.AddrPortFrom(netip.AddrFrom4(t.VIP), t.VIPPort)
}

// frameFlags returns the TCP flags of an Ethernet frame (0 if it has none).
func frameFlags(eth []byte) uint8 {
	if len(eth) < header.EthernetLen {
		return 0
	}
	ip, err := header.ParseIPv4(eth[header.EthernetLen:])
	if err != nil {
		return 0
	}
	tcp, err := header.ParseTCP(ip.Payload())
	if err != nil {
		return 0
	}
	return tcp.Flags()
}
