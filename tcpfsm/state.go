// Package tcpfsm is the switch's own minimal TCP: stateless SYN-ACKs with
// SYN cookies, then, per connection, request buffering and acknowledgment
// until the request head is complete, and the switch's own responses
// (HTTP errors) with retransmission until they are acknowledged. After a
// handoff the back-end's kernel owns the connection and tcpfsm is done with it.
//
// It is pure: segments in, segments and events out, time passed in as
// nanoseconds of a monotonic clock. No syscalls, no allocation.
package tcpfsm

// State is the state of a connection the switch owns.
type State uint8

// States. The zero value is invalid so that a forgotten initialisation shows.
const (
	StateInvalid State = iota
	// RequestWait: handshake done, the request head is being received.
	RequestWait
	// HandingOff: the request is complete and sent to an agent; the shard
	// queues the client's frames and does not feed them to the Conn.
	HandingOff
	// Responding: the switch sends its own response and FIN.
	Responding
	// FinWait: the switch's response and FIN are acknowledged; waiting for
	// the client's FIN.
	FinWait
	// Closed: the connection is over; free it.
	Closed
)

var stateNames = [...]string{"invalid", "request-wait", "handing-off", "responding", "fin-wait", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state?"
}
