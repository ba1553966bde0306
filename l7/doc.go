// Package l7 holds the layer-7 decisions of the switch: an incremental,
// allocation-free parser for HTTP/1.x request heads ([Request]), the rules
// that map a parsed request to a back-end pool ([Router]), round-robin
// selection inside a pool ([Pool.PickRoundRobin]) and the HTTP responses the
// switch sends itself when it cannot hand a connection off ([ErrorResponse]).
//
// Nothing here allocates on the hot path: the parser records offsets into
// the caller's buffer in fixed-size arrays, rules are compiled once by
// [NewRouter], and the error responses are built at package initialisation.
package l7
