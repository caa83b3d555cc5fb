package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/courierbus/courier/bus"
)

// Keys. Every key starts with a one-letter kind and a slash:
//
//	l/<topic> 0x00 <seq, 8 bytes big-endian>   a record of topic's log
//	t/<topic>                                 topic metadata (epoch, first, last, bytes)
//	c/<topic> 0x00 <name>                     a durable consumer's state
//
// Topic names never contain 0x00 (Open's callers get an error for one), so
// the 0x00 ends the topic and a log's keys sort by sequence number.
const (
	logKind      = 'l'
	metaKind     = 't'
	consumerKind = 'c'
)

// maxTopicLen bounds topic names; the bus allows 255 bytes, the rest is slack.
const maxTopicLen = 1024

// Value format versions. A value whose first byte is another version is
// corrupt to this code.
const (
	recordV1   = 1
	metaV1     = 1
	consumerV1 = 1
)

func appendLogPrefix(b []byte, topic string) []byte {
	b = append(b, logKind, '/')
	b = append(b, topic...)
	return append(b, 0)
}

func appendLogKey(b []byte, topic string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendLogPrefix(b, topic), seq)
}

func metaKey(topic string) []byte {
	b := make([]byte, 0, 2+len(topic))
	b = append(b, metaKind, '/')
	return append(b, topic...)
}

func consumerKey(topic, name string) []byte {
	b := make([]byte, 0, 3+len(topic)+len(name))
	b = append(b, consumerKind, '/')
	b = append(b, topic...)
	b = append(b, 0)
	return append(b, name...)
}

// seqOf returns the sequence number of a log key with the given prefix.
func seqOf(key, prefix []byte) (uint64, bool) {
	if len(key) != len(prefix)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), true
}

// errShort is the cause reported when a value ends early or has bytes left.
var errShort = errors.New("truncated or overlong value")

// corrupt wraps a decoding failure with ErrCorrupt and the key it was read
// from.
func corrupt(key []byte, err error) error {
	return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
}

// recordSize returns the exact length of r's encoding.
func recordSize(r *bus.Record) int {
	n := 1 + varintLen(r.Time.Unix()) + uvarintLen(uint64(r.Time.Nanosecond()))
	n += strLen(r.PublisherID)
	n += uvarintLen(uint64(len(r.Headers)))
	for k, v := range r.Headers {
		n += strLen(k) + strLen(v)
	}
	n += uvarintLen(uint64(len(r.To)))
	for _, s := range r.To {
		n += strLen(s)
	}
	n += uvarintLen(uint64(len(r.Except)))
	for _, s := range r.Except {
		n += strLen(s)
	}
	n += strLen(r.ExceptMember)
	n += uvarintLen(uint64(len(r.Data))) + len(r.Data)
	return n
}

func strLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// appendRecord appends the encoding of r to b. Seq is not encoded: it is in
// the key. Version 1 is, in order: the version byte; Time as a signed varint
// of Unix seconds and an unsigned varint of nanoseconds; PublisherID;
// Headers as a count and key/value pairs; To and Except as counts and
// strings; ExceptMember; Data. Strings and Data are an unsigned varint length
// and the bytes.
func appendRecord(b []byte, r *bus.Record) []byte {
	b = append(b, recordV1)
	b = binary.AppendVarint(b, r.Time.Unix())
	b = binary.AppendUvarint(b, uint64(r.Time.Nanosecond()))
	b = appendString(b, r.PublisherID)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for k, v := range r.Headers {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(r.To)))
	for _, s := range r.To {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Except)))
	for _, s := range r.Except {
		b = appendString(b, s)
	}
	b = appendString(b, r.ExceptMember)
	b = binary.AppendUvarint(b, uint64(len(r.Data)))
	return append(b, r.Data...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes a value front to back; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (d *reader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *reader) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *reader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errors.New("bad varint"))
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *reader) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errors.New("bad varint"))
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *reader) fixed64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	x := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return x
}

// bytes returns the next length-prefixed field, aliasing the input.
func (d *reader) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *reader) string() string { return string(d.bytes()) }

// count reads an element count and checks that the rest of the value could
// hold that many elements of at least min bytes each, so that a bad count
// cannot make the decoder allocate much.
func (d *reader) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/min) {
		d.fail(fmt.Errorf("count %d exceeds value", n))
		return 0
	}
	return int(n)
}

func (d *reader) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail(errShort)
	}
}

func (d *reader) version(want byte) {
	if v := d.byte(); d.err == nil && v != want {
		d.fail(fmt.Errorf("unknown format version %d", v))
	}
}

// decodeTime reads the Time fields that follow the version byte.
func (d *reader) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		d.fail(fmt.Errorf("nanoseconds %d out of range", nsec))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// decodeRecord decodes v (an encoding made by appendRecord) into r, leaving
// r.Seq alone. Strings and Data are copied, so r does not alias v. A nil
// error means every byte of v was used.
func decodeRecord(v []byte, r *bus.Record) error {
	d := reader{b: v}
	d.version(recordV1)
	r.Time = d.time()
	r.PublisherID = d.string()
	if n := d.count(2); n > 0 {
		r.Headers = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Headers[k] = d.string()
		}
	} else {
		r.Headers = nil
	}
	r.To = d.strings()
	r.Except = d.strings()
	r.ExceptMember = d.string()
	data := d.bytes()
	d.end()
	if d.err != nil {
		return d.err
	}
	r.Data = nil
	if len(data) > 0 {
		r.Data = append(make([]byte, 0, len(data)), data...)
	}
	return nil
}

func (d *reader) strings() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	s := make([]string, n)
	for i := range s {
		s[i] = d.string()
	}
	return s
}

// decodeRecordTime decodes only the Time of an encoded record.
func decodeRecordTime(v []byte) (time.Time, error) {
	d := reader{b: v}
	d.version(recordV1)
	t := d.time()
	return t, d.err
}

// topicState is a topic's metadata. first is the lowest sequence number
// that may still be held and last the highest assigned; the log is empty
// when first > last. bytes is the total encoded size of records first..last.
type topicState struct {
	epoch, first, last, bytes uint64
}

func appendMeta(b []byte, m topicState) []byte {
	b = append(b, metaV1)
	b = binary.BigEndian.AppendUint64(b, m.epoch)
	b = binary.AppendUvarint(b, m.first)
	b = binary.AppendUvarint(b, m.last)
	return binary.AppendUvarint(b, m.bytes)
}

func decodeMeta(v []byte) (topicState, error) {
	d := reader{b: v}
	d.version(metaV1)
	m := topicState{epoch: d.fixed64(), first: d.uvarint(), last: d.uvarint(), bytes: d.uvarint()}
	d.end()
	switch {
	case d.err != nil:
		return topicState{}, d.err
	case m.epoch == 0:
		return topicState{}, errors.New("zero epoch")
	case m.first == 0 || m.last == math.MaxUint64 || m.first > m.last+1:
		return topicState{}, fmt.Errorf("first %d, last %d out of order", m.first, m.last)
	}
	return m, nil
}

// appendConsumer encodes a consumer state: version, ack floor, delivered,
// the count of acked sequence numbers and each one, as unsigned varints.
func appendConsumer(b []byte, c *bus.ConsumerState) []byte {
	b = append(b, consumerV1)
	b = binary.AppendUvarint(b, c.AckFloor)
	b = binary.AppendUvarint(b, c.Delivered)
	b = binary.AppendUvarint(b, uint64(len(c.Acked)))
	for _, s := range c.Acked {
		b = binary.AppendUvarint(b, s)
	}
	return b
}

func decodeConsumer(v []byte) (bus.ConsumerState, error) {
	d := reader{b: v}
	d.version(consumerV1)
	c := bus.ConsumerState{AckFloor: d.uvarint(), Delivered: d.uvarint()}
	if n := d.count(1); n > 0 {
		c.Acked = make([]uint64, n)
		for i := range c.Acked {
			c.Acked[i] = d.uvarint()
		}
	}
	d.end()
	if d.err != nil {
		return bus.ConsumerState{}, d.err
	}
	return c, nil
}
