// Package mono is the switch's one time type: Time, a point on a monotonic
// clock in nanoseconds, with time.Duration for spans between points. The
// data path never reads a clock: the shard loop reads Clock once a round
// and passes the value down, so tests and fuzzers move time by hand.
package mono

import (
	"math"
	"time"
)

// Time is a point on the monotonic clock, in nanoseconds. The zero Time is
// "not set" wherever a field may be unset.
type Time int64

// Never is a Time that never comes.
const Never Time = math.MaxInt64

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Clock returns a clock for the whole process: monotonic time since the
// call, offset by the wall clock at the call, so that it only moves
// forward, is the same for every goroutine, and does not restart at zero
// when the process does (SYN cookie epochs are computed from it).
func Clock() func() Time {
	start := time.Now()
	base := Time(start.UnixNano())
	return func() Time { return base.Add(time.Since(start)) }
}
