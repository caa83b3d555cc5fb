package bus

import (
	"fmt"
	"strings"
)

// MaxTopicLen is the longest topic name or pattern, in bytes.
const MaxTopicLen = 255

// ValidateTopic reports whether name can be published to: dot-separated
// tokens of [A-Za-z0-9_-], at most [MaxTopicLen] bytes, no wildcards. Names
// whose first token starts with '$' belong to the bus and are valid here,
// but only the bus publishes to them.
func ValidateTopic(name string) error { return validate(name, false) }

// ValidatePattern reports whether pattern can be subscribed to: a topic
// name whose tokens may also be '*' (exactly one token) or, as the last
// token, '>' (one or more tokens).
func ValidatePattern(pattern string) error { return validate(pattern, true) }

func validate(name string, pattern bool) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	}
	if len(name) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidTopic, len(name), MaxTopicLen)
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			continue
		}
		tok := name[start:i]
		last := i == len(name)
		if err := validToken(tok, start == 0, last, pattern); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidTopic, name, err)
		}
		start = i + 1
	}
	return nil
}

func validToken(tok string, first, last, pattern bool) error {
	switch {
	case tok == "":
		return errString("empty token")
	case tok == "*" && pattern:
		return nil
	case tok == ">" && pattern:
		if !last {
			return errString("'>' must be the last token")
		}
		return nil
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '$' && i == 0 && first && len(tok) > 1 {
			continue
		}
		if !isNameByte(c) {
			return errString(fmt.Sprintf("byte %q not allowed", c))
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

type errString string

func (e errString) Error() string { return string(e) }

// reserved reports whether name belongs to the bus ($-prefixed).
func reserved(name string) bool { return strings.HasPrefix(name, "$") }

// isPattern reports whether a valid pattern has wildcards.
func isPattern(p string) bool {
	return p == "*" || p == ">" || strings.HasPrefix(p, "*.") || strings.HasSuffix(p, ".*") ||
		strings.HasSuffix(p, ".>") || strings.Contains(p, ".*.")
}

// Match reports whether topic matches pattern. Both must be valid. A
// wildcard never matches a first token that starts with '$': the bus's own
// topics are reached only by patterns that name them.
func Match(pattern, topic string) bool {
	first := true
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		tt, trest, tmore := strings.Cut(topic, ".")
		wild := pt == "*" || pt == ">"
		switch {
		case wild && first && reserved(tt):
			return false
		case pt == ">":
			return true
		case pt != "*" && pt != tt:
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic, first = prest, trest, false
	}
}

// trie indexes subscriptions by pattern tokens, so a topic's subscribers are
// found by walking its tokens rather than testing every pattern.
type trie struct {
	next map[string]*trie
	star *trie
	full []*Subscription // patterns ending in '>' here
	subs []*Subscription // patterns ending here
}

func (n *trie) insert(pattern string, s *Subscription) {
	for tok := range strings.SplitSeq(pattern, ".") {
		switch tok {
		case ">":
			n.full = append(n.full, s)
			return
		case "*":
			if n.star == nil {
				n.star = &trie{}
			}
			n = n.star
		default:
			c := n.next[tok]
			if c == nil {
				if n.next == nil {
					n.next = make(map[string]*trie)
				}
				c = &trie{}
				n.next[tok] = c
			}
			n = c
		}
	}
	n.subs = append(n.subs, s)
}

// remove deletes s from the node of pattern and prunes empty nodes.
func (n *trie) remove(pattern string, s *Subscription) {
	tok, rest, more := strings.Cut(pattern, ".")
	if tok == ">" {
		n.full = without(n.full, s)
		return
	}
	var c *trie
	if tok == "*" {
		c = n.star
	} else {
		c = n.next[tok]
	}
	if c == nil {
		return
	}
	if more {
		c.remove(rest, s)
	} else {
		c.subs = without(c.subs, s)
	}
	if c.empty() {
		if tok == "*" {
			n.star = nil
		} else {
			delete(n.next, tok)
		}
	}
}

func (n *trie) empty() bool {
	return len(n.next) == 0 && n.star == nil && len(n.full) == 0 && len(n.subs) == 0
}

func without(list []*Subscription, s *Subscription) []*Subscription {
	for i, x := range list {
		if x == s {
			out := append(list[:i:i], list[i+1:]...)
			if len(out) == 0 {
				return nil
			}
			return out
		}
	}
	return list
}

// match appends the subscriptions whose patterns match topic.
func (n *trie) match(topic string, out []*Subscription) []*Subscription {
	return n.walk(topic, true, out)
}

func (n *trie) walk(topic string, first bool, out []*Subscription) []*Subscription {
	tok, rest, more := strings.Cut(topic, ".")
	wild := !(first && reserved(tok))
	if wild {
		out = append(out, n.full...)
	}
	if c := n.next[tok]; c != nil {
		if more {
			out = c.walk(rest, false, out)
		} else {
			out = append(out, c.subs...)
		}
	}
	if c := n.star; c != nil && wild {
		if more {
			out = c.walk(rest, false, out)
		} else {
			out = append(out, c.subs...)
		}
	}
	return out
}
