package l7

import "strconv"

// fallbackStatus is the response given for a status not in errorReasons.
const fallbackStatus = 500

// errorReasons are the statuses the switch answers itself, with their
// reason phrases.
var errorReasons = map[int]string{
	400: "Bad Request",                     // Malformed request head
	404: "Not Found",                       // no rule matched
	408: "Request Timeout",                 // head not complete in time
	431: "Request Header Fields Too Large", // TooLarge request head
	500: "Internal Server Error",           // anything else
	503: "Service Unavailable",             // no back-end up, or the agent refused
	504: "Gateway Timeout",                 // the handoff timed out
}

// errorResponses maps each status of errorReasons to its response.
var errorResponses = buildErrorResponses()

func buildErrorResponses() map[int][]byte {
	rs := make(map[int][]byte, len(errorReasons))
	for code, reason := range errorReasons {
		status := strconv.Itoa(code) + " " + reason
		body := status + "\n"
		resp := "HTTP/1.1 " + status + "\r\n" +
			"Content-Type: text/plain\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
			"Connection: close\r\n" +
			"\r\n" + body
		rs[code] = []byte(resp)
	}
	return rs
}

// ErrorResponse returns the complete HTTP/1.1 response the switch sends
// for a status it generates itself: 400, 404, 408, 431, 500, 503 or 504.
// It has a status line, Content-Type: text/plain, Content-Length,
// Connection: close and a one-line body. Any other status gets the 500
// response. The responses are built once: ErrorResponse never allocates.
// The caller must not modify the slice (its capacity is its length, so an
// append copies it).
func ErrorResponse(status int) []byte {
	r, ok := errorResponses[status]
	if !ok {
		r = errorResponses[fallbackStatus]
	}
	return r[:len(r):len(r)]
}
