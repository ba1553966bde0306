package l7

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// HashKey says what a pool's policy is given as its key ([Picker.Pick]):
// a part of the request, or the client's address. Its configuration form
// is "path", "host", "header:NAME", "cookie:NAME" or "client"
// ([ParseHashKey], [HashKey.String]).
type HashKey struct {
	Kind HashKind
	Name string // of the header or cookie
}

// HashKind is the kind of a HashKey.
type HashKind uint8

// Kinds of hash keys. A TLS connection has no path, header or cookie: its
// server name stands for the host and the path, its session id for a
// cookie, and a header key is empty (the policy then falls back to
// least-connections).
const (
	// KeyNone: the policy is given no key.
	KeyNone HashKind = iota
	KeyPath
	KeyHost
	KeyHeader // named
	KeyCookie // named
	KeyClient // the client's address
	numKinds
)

// kindNames are the configuration names of the kinds.
var kindNames = [numKinds]string{"", "path", "host", "header", "cookie", "client"}

// named reports whether keys of kind k have a name.
func (k HashKind) named() bool { return k == KeyHeader || k == KeyCookie }

// String returns the key in its configuration form; KeyNone is "".
func (k HashKey) String() string {
	if k.Kind >= numKinds {
		return fmt.Sprintf("HashKind(%d)", uint8(k.Kind))
	}
	if k.Kind.named() {
		return kindNames[k.Kind] + ":" + k.Name
	}
	return kindNames[k.Kind]
}

// policyKeys are the hash keys each policy takes: the one it takes when
// none is given (KeyNone: it must be given one, unless it takes none), and
// the kinds it accepts. LARD's targets are request paths.
var policyKeys = [numPolicies]struct {
	def   HashKind
	kinds []HashKind
}{
	PolicyLARD:            {KeyPath, []HashKind{KeyPath}},
	PolicyBoundedLoadHash: {KeyPath, []HashKind{KeyPath, KeyHost, KeyHeader, KeyCookie, KeyClient}},
	PolicyCookieAffinity:  {KeyNone, []HashKind{KeyCookie}},
	PolicySourceAffinity:  {KeyClient, []HashKind{KeyClient}},
}

// ErrHashKey is the error of [ParseHashKey], and of [Pool.Validate] for a
// key the policy does not take, wrapped with the details.
var ErrHashKey = errors.New("invalid hash key")

// ParseHashKey returns the key the configuration form s names for a pool
// of policy p, or p's default key when s is empty: the path for LARD and
// bounded-load hashing, the client's address for source affinity, none
// for the policies that take no key. Cookie affinity needs "cookie:NAME".
// Header and cookie names must be HTTP tokens.
func ParseHashKey(s string, p Policy) (HashKey, error) {
	if p >= numPolicies {
		return HashKey{}, ErrPolicy
	}
	k := HashKey{Kind: policyKeys[p].def}
	if s != "" {
		kind, name, hasName := strings.Cut(s, ":")
		i := slices.Index(kindNames[1:], kind)
		if i < 0 {
			return HashKey{}, fmt.Errorf("%w %q: not path, host, header:NAME, cookie:NAME or client", ErrHashKey, s)
		}
		k = HashKey{Kind: HashKind(i + 1), Name: name}
		if !k.Kind.named() && hasName {
			return HashKey{}, fmt.Errorf("%w %q: %s takes no name", ErrHashKey, s, kind)
		}
	}
	if k.Kind == KeyNone && len(policyKeys[p].kinds) > 0 {
		return HashKey{}, fmt.Errorf("%w: policy %v needs %s", ErrHashKey, p, keyForms(p))
	}
	if err := k.check(p); err != nil {
		return HashKey{}, err
	}
	return k, nil
}

// check returns an ErrHashKey when policy p does not take k. Every policy
// takes KeyNone: it is then given no key.
func (k HashKey) check(p Policy) error {
	switch {
	case k.Kind == KeyNone:
		return nil
	case len(policyKeys[p].kinds) == 0:
		return fmt.Errorf("%w %q: policy %v hashes nothing", ErrHashKey, k, p)
	case !slices.Contains(policyKeys[p].kinds, k.Kind):
		return fmt.Errorf("%w %q: policy %v needs %s", ErrHashKey, k, p, keyForms(p))
	case k.Kind.named() && !isToken([]byte(k.Name)):
		return fmt.Errorf("%w %q: %q is not a %s name", ErrHashKey, k, k.Name, kindNames[k.Kind])
	case !k.Kind.named() && k.Name != "":
		return fmt.Errorf("%w: %s takes no name", ErrHashKey, kindNames[k.Kind])
	}
	return nil
}

// keyForms lists the configuration forms of the keys policy p takes:
// "path", "host" or "header:NAME".
func keyForms(p Policy) string {
	kinds := policyKeys[p].kinds
	var b strings.Builder
	for i, kind := range kinds {
		switch {
		case i == 0:
		case i == len(kinds)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", HashKey{Kind: kind, Name: "NAME"})
	}
	return b.String()
}

// FromRequest returns the key of an HTTP request req parsed from buf: its
// path, its host, the value of header Name, the value of cookie Name, or
// client (the client's address). The result aliases buf or client; it is
// empty when the request has no such part, nil for KeyNone.
func (k HashKey) FromRequest(buf []byte, req *Request, client []byte) []byte {
	switch k.Kind {
	case KeyPath:
		return req.Path(buf)
	case KeyHost:
		return req.Host(buf)
	case KeyHeader:
		v, _ := req.Header(buf, k.Name)
		return v
	case KeyCookie:
		v, _ := req.Cookie(buf, k.Name)
		return v
	case KeyClient:
		return client
	}
	return nil
}

// FromHello returns the key of a TLS connection whose ClientHello hello is
// parsed from buf: the server name for a path or host key, the session id
// for a cookie key (a resumption goes where its session is), client for a
// client key. The result aliases buf or client; it is nil for a header key
// and for KeyNone, empty when the ClientHello has no such part.
func (k HashKey) FromHello(buf []byte, hello *ClientHello, client []byte) []byte {
	switch k.Kind {
	case KeyPath, KeyHost:
		return hello.SNI(buf)
	case KeyCookie:
		return hello.SessionID(buf)
	case KeyClient:
		return client
	}
	return nil
}
