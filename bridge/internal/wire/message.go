package wire

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
)

// A message frame is written in two parts so that the part every recipient
// shares is encoded once per message: the head, which names the
// subscription and the delivery number, and the tail, which holds the
// message itself and closes the object.

// AppendMessageHead appends `{"op":"message","sub":<sub>,"n":<n>,` to dst,
// with "attempt" when attempt > 1. n 0 (a volatile delivery) is left out.
// sub is the subscription id already quoted (see AppendString).
func AppendMessageHead(dst, quotedSub []byte, n uint64, attempt int) []byte {
	dst = append(dst, `{"op":"message","sub":`...)
	dst = append(dst, quotedSub...)
	if n != 0 {
		dst = append(dst, `,"n":`...)
		dst = strconv.AppendUint(dst, n, 10)
	}
	if attempt > 1 {
		dst = append(dst, `,"attempt":`...)
		dst = strconv.AppendInt(dst, int64(attempt), 10)
	}
	return append(dst, ',')
}

// MessageTail returns the shared end of a message frame:
// `"topic":...,"epoch":...,"seq":...,"rooms":[...],"headers":{...},"data":...}`.
// Data that is not valid JSON (a topic with another codec), or not valid
// UTF-8 (which no text frame may carry), travels base64 encoded in "data64".
func MessageTail(topic string, epoch, seq uint64, rooms []string, headers map[string]string, data []byte) []byte {
	n := 40 + len(topic) + len(data)
	dst := make([]byte, 0, n)
	dst = append(dst, `"topic":`...)
	dst = AppendString(dst, topic)
	if seq != 0 {
		dst = append(dst, `,"epoch":"`...)
		dst = strconv.AppendUint(dst, epoch, 10)
		dst = append(dst, `","seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	if len(rooms) > 0 {
		dst = append(dst, `,"rooms":[`...)
		for i, r := range rooms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, r)
		}
		dst = append(dst, ']')
	}
	if len(headers) > 0 {
		keys := make([]string, 0, len(headers))
		for k := range headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, `,"headers":{`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			dst = AppendString(dst, headers[k])
		}
		dst = append(dst, '}')
	}
	if utf8.Valid(data) && json.Valid(data) {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	} else {
		dst = append(dst, `,"data64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, data)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
