// Package l7 holds the layer-7 decisions of the switch: an incremental,
// allocation-free parser for HTTP/1.x request heads ([Request]) and one for
// TLS ClientHellos ([ClientHello]: server name, ALPN, session id, without
// decrypting anything), the rules that map a parsed request or ClientHello
// to a back-end pool ([Router]), the balancing
// policies that pick a back-end inside a pool ([Policy], [NewPicker]) and
// the HTTP responses the switch sends itself when it cannot hand a
// connection off ([ErrorResponse]).
//
// Nothing here allocates on the hot path: the parser records offsets into
// the caller's buffer in fixed-size arrays, rules are compiled once by
// [NewRouter], and the error responses are built at package initialisation.
package l7
