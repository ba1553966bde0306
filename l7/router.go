package l7

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Errors of NewRouter, wrapped with the index of the offending rule.
var (
	ErrUnreachableRule = errors.New("rule follows a catch-all rule and can never match")
	ErrHostPattern     = errors.New("host must be a host name, an IP literal or *.domain, without port")
	ErrHeaderName      = errors.New("header name must be an HTTP token")
	ErrCookieName      = errors.New("cookie name must be an HTTP token")
	ErrValueWithoutKey = errors.New("a header or cookie value needs a header or cookie name")
	ErrPoolIndex       = errors.New("pool index must not be negative")
	ErrMethod          = errors.New("method must be an HTTP token")
	ErrPathRegex       = errors.New("path regular expression does not compile or is too long")
	ErrMixedRule       = errors.New("a rule has HTTP conditions or TLS conditions (sni, alpn), not both")
)

// MaxPathRegex bounds the length of a path regular expression. Go's regexp
// (RE2) matches in time linear in the path for a given expression, about
// len(expression) x len(path) steps at worst, and never backtracks: a rule
// cannot be made to take exponential time by a crafted path.
const MaxPathRegex = 1024

// Match holds the conditions of one rule; all the non-empty ones must hold.
// Empty fields match anything, and a rule with no conditions is a
// catch-all.
type Match struct {
	// Host is an exact host name (compared case-insensitively, port
	// ignored, one trailing dot of the request's host ignored) or a
	// wildcard "*.example.com", which matches every subdomain at any depth
	// but not example.com itself.
	Host string
	// PathPrefix must be a prefix of the request's path, compared byte for
	// byte as sent (no percent-decoding or dot-segment removal: rules
	// route requests, they are no access control).
	PathPrefix string
	// PathRegex must match the request's path (as sent, query excluded),
	// anywhere unless anchored with ^ and $: Go's RE2 syntax, compiled
	// once, at most MaxPathRegex bytes.
	PathRegex string
	// Method is the request's method, compared exactly (methods are case
	// sensitive).
	Method string
	// SNI is a TLS connection's server name: exact or "*.example.com",
	// compared as Host is. TLS only.
	SNI string
	// ALPN is a protocol the ClientHello offers. TLS only.
	ALPN string
	// Header is a header name that must be present ...
	Header string
	// ... and, if HeaderHasValue, whose first value must equal HeaderValue
	// exactly.
	HeaderValue    string
	HeaderHasValue bool
	// Cookie is a cookie name (case-sensitive) that must be present ...
	Cookie string
	// ... and, if CookieHasValue, whose value must equal CookieValue
	// exactly (surrounding double quotes removed).
	CookieValue    string
	CookieHasValue bool
}

// catchAll reports whether m has no condition.
func (m *Match) catchAll() bool { return !m.http() && !m.tls() }

// http reports whether m has a condition on an HTTP request; such a rule
// never matches a TLS connection.
func (m *Match) http() bool {
	return m.Host != "" || m.PathPrefix != "" || m.PathRegex != "" || m.Method != "" || m.Header != "" || m.Cookie != ""
}

// tls reports whether m has a condition on a TLS ClientHello; such a rule
// never matches an HTTP request.
func (m *Match) tls() bool { return m.SNI != "" || m.ALPN != "" }

// Rule sends the requests that satisfy Match to the pool with index Pool.
type Rule struct {
	Match Match
	Pool  int
}

// rule is a Rule prepared for matching: its host lowercased and split into
// exact name or wildcard suffix.
type rule struct {
	Rule
	host, sni hostPattern
	re        *regexp.Regexp // PathRegex, compiled
}

// hostPattern is a lowercased exact host, or a wildcard's ".example.com".
type hostPattern struct {
	name     string
	wildcard bool
}

func compileHost(pattern string) (hostPattern, error) {
	p := hostPattern{name: strings.ToLower(pattern)}
	name := p.name
	if rest, ok := strings.CutPrefix(p.name, "*"); ok {
		p.wildcard, p.name = true, rest
		name = strings.TrimPrefix(rest, ".")
		if name == rest {
			return hostPattern{}, ErrHostPattern // "*" not followed by "."
		}
	}
	if (p.wildcard || name != "") && (!validHostName(name) || strings.Contains(name, "*")) {
		return hostPattern{}, ErrHostPattern
	}
	return p, nil
}

// matches reports whether host (without port or trailing dot) fits the
// pattern; an empty pattern fits anything.
func (p *hostPattern) matches(host []byte) bool {
	if p.wildcard {
		return len(host) > len(p.name) && equalFold(host[len(host)-len(p.name):], p.name)
	}
	return p.name == "" || equalFold(host, p.name)
}

// Router maps a parsed request to a pool with an ordered list of rules. It
// is immutable after NewRouter and safe for concurrent use.
type Router struct {
	rules []rule
}

// NewRouter checks and prepares rules. It refuses a rule that can never
// match because a catch-all comes before it, and malformed host patterns,
// header or cookie names; the error names the rule's index.
func NewRouter(rules []Rule) (*Router, error) {
	rt := &Router{rules: make([]rule, len(rules))}
	catchAll := -1
	for i, ru := range rules {
		if catchAll >= 0 {
			return nil, fmt.Errorf("l7: rule %d: %w (rule %d)", i, ErrUnreachableRule, catchAll)
		}
		c, err := compileRule(ru)
		if err != nil {
			return nil, fmt.Errorf("l7: rule %d: %w", i, err)
		}
		rt.rules[i] = c
		if ru.Match.catchAll() {
			catchAll = i
		}
	}
	return rt, nil
}

func compileRule(ru Rule) (rule, error) {
	m := &ru.Match
	c := rule{Rule: ru}
	var err error
	if c.host, err = compileHost(m.Host); err != nil {
		return rule{}, err
	}
	if c.sni, err = compileHost(m.SNI); err != nil {
		return rule{}, err
	}
	if m.http() && m.tls() {
		return rule{}, ErrMixedRule
	}
	if m.PathRegex != "" {
		if len(m.PathRegex) > MaxPathRegex {
			return rule{}, ErrPathRegex
		}
		re, err := regexp.Compile(m.PathRegex)
		if err != nil {
			return rule{}, fmt.Errorf("%w: %v", ErrPathRegex, err)
		}
		c.re = re
	}
	switch {
	case m.Method != "" && !isToken([]byte(m.Method)):
		return rule{}, ErrMethod
	case m.Header != "" && !isToken([]byte(m.Header)):
		return rule{}, ErrHeaderName
	case m.Cookie != "" && !isToken([]byte(m.Cookie)):
		return rule{}, ErrCookieName
	case (m.HeaderHasValue && m.Header == "") || (m.CookieHasValue && m.Cookie == ""):
		return rule{}, ErrValueWithoutKey
	case ru.Pool < 0:
		return rule{}, ErrPoolIndex
	}
	return c, nil
}

// validHostName reports whether s is a non-empty host as the parser
// accepts it in a Host header, without port.
func validHostName(s string) bool {
	n, ok := splitAuthority([]byte(s))
	return ok && n > 0 && n == len(s)
}

// Route returns the pool of the first rule the request satisfies; ok is
// false when none does (the switch answers 404). r must have been parsed
// to Done from buf; otherwise Route reports no match.
func (rt *Router) Route(r *Request, buf []byte) (pool int, ok bool) {
	if r.status != Done {
		return 0, false
	}
	host := r.Host(buf)
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	path := r.Path(buf)
	for i := range rt.rules {
		if ru := &rt.rules[i]; !ru.Match.tls() && ru.matches(r, buf, host, path) {
			return ru.Pool, true
		}
	}
	return 0, false
}

// RouteTLS returns the pool of the first rule a TLS connection satisfies
// by its ClientHello (rules with TLS conditions, or none); ok is false
// when none does. h must have been parsed to Done from buf.
func (rt *Router) RouteTLS(h *ClientHello, buf []byte) (pool int, ok bool) {
	sni := h.SNI(buf)
	if n := len(sni); n > 0 && sni[n-1] == '.' {
		sni = sni[:n-1]
	}
	for i := range rt.rules {
		ru := &rt.rules[i]
		if ru.Match.http() || !ru.sni.matches(sni) || ru.Match.ALPN != "" && !h.HasALPN(buf, ru.Match.ALPN) {
			continue
		}
		return ru.Pool, true
	}
	return 0, false
}

func (ru *rule) matches(r *Request, buf, host, path []byte) bool {
	m := &ru.Match
	if !ru.host.matches(host) {
		return false
	}
	if len(path) < len(m.PathPrefix) || string(path[:len(m.PathPrefix)]) != m.PathPrefix {
		return false
	}
	if m.Method != "" && string(r.Method(buf)) != m.Method {
		return false
	}
	if ru.re != nil && !ru.re.Match(path) {
		return false
	}
	if m.Header != "" {
		v, ok := r.Header(buf, m.Header)
		if !ok || (m.HeaderHasValue && string(v) != m.HeaderValue) {
			return false
		}
	}
	if m.Cookie != "" {
		v, ok := r.Cookie(buf, m.Cookie)
		if !ok || (m.CookieHasValue && string(v) != m.CookieValue) {
			return false
		}
	}
	return true
}
