package policysim

// lru is a back-end's cache of URL ranks, least recently used evicted
// first: a doubly linked list over a fixed array of entries, with an
// index by URL.
type lru struct {
	entry      []int32 // by URL: its entry + 1; 0: not cached
	url        []int32 // by entry
	prev, next []int32 // by entry: towards the most and the least recently used; -1 at the ends
	head, tail int32   // the most and the least recently used entry; -1 when empty
}

// newLRU returns an empty cache of capacity objects among urls URLs;
// capacity -1 or 0 caches nothing.
func newLRU(urls, capacity int) lru {
	capacity = max(capacity, 0)
	return lru{
		entry: make([]int32, urls), url: make([]int32, 0, capacity),
		prev: make([]int32, 0, capacity), next: make([]int32, 0, capacity),
		head: -1, tail: -1,
	}
}

// access reports whether u is cached, and makes it the most recently used,
// evicting the least recently used when the cache is full and u new.
func (c *lru) access(u int32) bool {
	if e := c.entry[u] - 1; e >= 0 {
		c.unlink(e)
		c.pushFront(e)
		return true
	}
	switch {
	case len(c.url) < cap(c.url):
		e := int32(len(c.url))
		c.url, c.prev, c.next = append(c.url, u), append(c.prev, -1), append(c.next, -1)
		c.pushFront(e)
		c.entry[u] = e + 1
	case c.tail >= 0:
		e := c.tail
		c.entry[c.url[e]] = 0
		c.unlink(e)
		c.url[e] = u
		c.pushFront(e)
		c.entry[u] = e + 1
	}
	return false
}

func (c *lru) unlink(e int32) {
	p, n := c.prev[e], c.next[e]
	if p >= 0 {
		c.next[p] = n
	} else {
		c.head = n
	}
	if n >= 0 {
		c.prev[n] = p
	} else {
		c.tail = p
	}
}

func (c *lru) pushFront(e int32) {
	c.prev[e], c.next[e] = -1, c.head
	if c.head >= 0 {
		c.prev[c.head] = e
	} else {
		c.tail = e
	}
	c.head = e
}
