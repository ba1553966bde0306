package ring

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// senderSlot is the arena space per batch slot: a virtio-net header and a
// full-size frame with a VLAN tag fit.
const senderSlot = 2048

// maxBatch is the most messages one sendmmsg(2) call takes (UIO_MAXIOV).
const maxBatch = 1024

// Sender batches frames for one sendmmsg(2) call on its ring's socket, which
// sends them out of the ring's interface. It is zero copy: the queued frames
// are not copied, so their memory (a frame in an unreleased block, a Buffer)
// must stay untouched until Flush returns. A Sender belongs to one goroutine.
type Sender struct {
	fd    int
	msgs  []unix.Mmsghdr // msgs[i] sends iovs[i]
	iovs  []unix.Iovec
	n     int    // frames queued
	arena []byte // memory for Buffer
	used  int    // arena bytes handed out since the last Flush
	stats SenderStats
	pfd   [1]unix.PollFd // Flush's wait for room
}

// What Flush does when the kernel's queues are full: wait for room at
// most fullWait, fullRetries times in a row, before dropping the rest.
const (
	fullRetries = 4
	fullWait    = time.Millisecond
)

// NewSender returns a Sender that sends batch frames per system call
// (clamped to 1..1024).
func (r *Ring) NewSender(batch int) *Sender {
	batch = min(max(batch, 1), maxBatch)
	s := &Sender{
		fd:    r.fd,
		msgs:  make([]unix.Mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		arena: make([]byte, batch*senderSlot),
	}
	for i := range s.msgs {
		s.msgs[i].Hdr.Iov = &s.iovs[i]
		s.msgs[i].Hdr.SetIovlen(1)
	}
	return s
}

// Add queues pkt, a whole Ethernet frame preceded by its virtio-net header
// when the ring has VnetHdr (Frame.Raw of a received frame, or a Buffer). A
// full batch is flushed at once; errors of that flush are counted in Stats.
// It never allocates.
func (s *Sender) Add(pkt []byte) {
	if len(pkt) == 0 {
		s.stats.Other++
		return
	}
	s.iovs[s.n].Base = &pkt[0]
	s.iovs[s.n].SetLen(len(pkt))
	s.n++
	if s.n == len(s.msgs) {
		s.Flush()
	}
}

// Buffer returns n zeroed bytes of the Sender's own memory, for a frame the
// caller builds and then passes to Add. It stays valid until the next Flush;
// making room may flush the queued frames, so pass each buffer to Add before
// asking for the next one. It allocates only to grow past its initial size
// (batch × 2048 bytes between flushes).
func (s *Sender) Buffer(n int) []byte {
	if n > len(s.arena)-s.used {
		if s.n > 0 {
			s.Flush()
		}
		s.used = 0
		if n > len(s.arena) {
			s.arena = make([]byte, max(n, 2*len(s.arena)))
		}
	}
	b := s.arena[s.used : s.used+n : s.used+n]
	clear(b)
	s.used += n
	return b
}

// Flush sends the queued frames and returns how many the kernel accepted and
// the last error seen. A frame refused with EMSGSIZE (or another per-frame
// error) is skipped and the rest are sent. On EAGAIN or ENOBUFS (a queue
// full) it waits for the socket to poll writable, at most fullWait, and
// tries again, up to fullRetries times in a row; then the remaining frames
// are dropped. A forwarded frame dropped here costs the client a
// retransmission, so a short wait is the better deal: on veth the
// receiver's backlog drains between two calls. Every outcome is counted
// in Stats. In steady state it does not allocate.
func (s *Sender) Flush() (sent int, err error) {
	retries := 0
	for i := 0; i < s.n; {
		msgs := s.msgs[i:s.n]
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
			uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		s.stats.Calls++
		if errno == 0 && r > 0 {
			sent += int(r)
			i += int(r)
			retries = 0
			continue
		}
		rest := uint64(len(msgs))
		if (errno == unix.EAGAIN || errno == unix.ENOBUFS) && retries < fullRetries {
			retries++
			s.stats.Retries++
			s.pfd[0] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLOUT}
			unix.Poll(s.pfd[:], int(fullWait/time.Millisecond))
			continue
		}
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			s.stats.Again += rest
			i = s.n
		case unix.ENOBUFS:
			s.stats.NoBufs += rest
			i = s.n
		case unix.EMSGSIZE:
			s.stats.MsgSize++
			i++
		default: // includes a call that sent nothing without an error
			s.stats.Other++
			i++
		}
		if errno != 0 {
			err = errno
		}
	}
	s.stats.Sent += uint64(sent)
	for i := range s.n {
		s.iovs[i].Base = nil // do not keep the caller's memory alive
	}
	s.n, s.used = 0, 0
	return sent, err
}

// Stats returns the Sender's counters.
func (s *Sender) Stats() SenderStats { return s.stats }
