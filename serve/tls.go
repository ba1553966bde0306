package serve

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"
)

// tlsRecordHandshake is the first byte of a TLS connection: a handshake
// record.
const tlsRecordHandshake = 0x16

// TLSListener serves handed-off TLS connections with a certificate, next
// to plain ones: a connection whose first byte starts a TLS handshake
// record (the switch handed it off with its ClientHello in the receive
// queue) is accepted as a *tls.Conn with the configuration given; any
// other is accepted as it is, so plain HTTP keeps sendfile(2).
type TLSListener struct {
	net.Listener
	config *tls.Config
}

// NewTLSListener wraps l with config (Certificates set; NextProtos h2 and
// http/1.1 suit net/http).
func NewTLSListener(l net.Listener, config *tls.Config) *TLSListener {
	return &TLSListener{Listener: l, config: config}
}

// Accept returns the next connection, TLS or plain by its first byte,
// which it peeks at without taking it. A handed-off connection has its
// first bytes waiting already (the switch hands off complete requests); a
// connection that sends nothing within peekWait is taken as plain.
func (l *TLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if firstByte(c) == tlsRecordHandshake {
		return tls.Server(c, l.config), nil
	}
	return c, nil
}

// peekWait bounds the wait for a connection's first byte.
const peekWait = time.Second

// firstByte peeks at the first byte of c (MSG_PEEK), waiting up to
// peekWait, or returns -1.
func firstByte(c net.Conn) int {
	sc, ok := netConn(c).(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	c.SetReadDeadline(time.Now().Add(peekWait))
	defer c.SetReadDeadline(time.Time{})
	b := -1
	rc.Read(func(fd uintptr) bool {
		var buf [1]byte
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EAGAIN {
			return false // wait for data, up to the deadline
		}
		if err == nil && n == 1 {
			b = int(buf[0])
		}
		return true
	})
	return b
}
