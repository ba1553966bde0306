package control

import (
	"net/netip"

	"webswitch/internal/sys"
)

// Socket is the byte stream under a control connection, non-blocking: Read
// returns 0, nil when there is nothing to read (sys.ErrClosed once the peer
// closed), Write 0, nil when the stream is full. Fd is the descriptor the
// shard loop polls, or -1 for an in-memory socket, which is read every
// round instead (controltest.Pipe).
type Socket interface {
	Fd() int
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	// Connected reports, once the socket polled writable, whether the
	// connection was established (nil) or why not.
	Connected() error
	Close() error
}

// Dialer starts a connection to an agent; it must not block.
type Dialer func(agent netip.AddrPort) (Socket, error)

// DialTCP is the real Dialer: a non-blocking TCP connect with no Nagle
// delay and the short retransmission timeout of sys.ControlRTOMin.
func DialTCP(agent netip.AddrPort) (Socket, error) {
	fd, err := sys.DialTCP(agent)
	if err != nil {
		return nil, err
	}
	return tcpSocket(fd), nil
}

type tcpSocket int

func (s tcpSocket) Fd() int                     { return int(s) }
func (s tcpSocket) Read(b []byte) (int, error)  { return sys.Read(int(s), b) }
func (s tcpSocket) Write(b []byte) (int, error) { return sys.Write(int(s), b) }
func (s tcpSocket) Connected() error            { return sys.SocketError(int(s)) }
func (s tcpSocket) Close() error                { return sys.Close(int(s)) }
