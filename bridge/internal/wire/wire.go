// Package wire holds the frame types of the Courier bridge protocol, version
// 1 (docs/protocol.md), shared by package bridge and package bridge/client:
// the ops, error codes, close codes, the Frame type with its decoder, and the
// encoder of message frames used on the fan-out path.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Version is the protocol version this package speaks.
const Version = 1

// Ops. Client → server: hello, bye, subscribe, unsubscribe, ack, nack,
// publish, join, leave, presence, request, reply, ping. Server → client:
// welcome, subscribed, ok, message, resync, puback, presence,
// presence_event, request, reply, pong, error.
const (
	OpHello         = "hello"
	OpWelcome       = "welcome"
	OpBye           = "bye"
	OpSubscribe     = "subscribe"
	OpSubscribed    = "subscribed"
	OpUnsubscribe   = "unsubscribe"
	OpOK            = "ok"
	OpMessage       = "message"
	OpAck           = "ack"
	OpNack          = "nack"
	OpResync        = "resync"
	OpPublish       = "publish"
	OpPuback        = "puback"
	OpJoin          = "join"
	OpLeave         = "leave"
	OpPresence      = "presence"
	OpPresenceEvent = "presence_event"
	OpRequest       = "request"
	OpReply         = "reply"
	OpPing          = "ping"
	OpPong          = "pong"
	OpError         = "error"
)

// Error codes of error frames (and of failed replies).
const (
	CodeBadJSON       = "bad_json"
	CodeBadFrame      = "bad_frame"
	CodeUnknownOp     = "unknown_op"
	CodeVersion       = "version"
	CodeHelloRequired = "hello_required"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeInvalidName   = "invalid_name"
	CodeTypeMismatch  = "type_mismatch"
	CodeTooLarge      = "too_large"
	CodeRateLimited   = "rate_limited"
	CodeLimit         = "limit"
	CodeConflict      = "conflict"
	CodeNotFound      = "not_found"
	CodeNoHandler     = "no_handler"
	CodeTimeout       = "timeout"
	CodeFailed        = "failed"
	CodeUnavailable   = "unavailable"
	CodeInternal      = "internal"
)

// Codes returns every error code above, in a fixed order: a code's index
// in it is stable for the life of the process (the bridge counts error
// frames in an array indexed by it).
func Codes() []string {
	return []string{
		CodeBadJSON, CodeBadFrame, CodeUnknownOp, CodeVersion, CodeHelloRequired, CodeUnauthorized,
		CodeForbidden, CodeInvalidName, CodeTypeMismatch, CodeTooLarge, CodeRateLimited, CodeLimit,
		CodeConflict, CodeNotFound, CodeNoHandler, CodeTimeout, CodeFailed, CodeUnavailable, CodeInternal,
	}
}

// NumCodes is len(Codes()).
const NumCodes = 19

// CodeIndex returns the index of code in Codes(), or -1 for a code that is
// not one of them.
func CodeIndex(code string) int {
	switch code {
	case CodeBadJSON:
		return 0
	case CodeBadFrame:
		return 1
	case CodeUnknownOp:
		return 2
	case CodeVersion:
		return 3
	case CodeHelloRequired:
		return 4
	case CodeUnauthorized:
		return 5
	case CodeForbidden:
		return 6
	case CodeInvalidName:
		return 7
	case CodeTypeMismatch:
		return 8
	case CodeTooLarge:
		return 9
	case CodeRateLimited:
		return 10
	case CodeLimit:
		return 11
	case CodeConflict:
		return 12
	case CodeNotFound:
		return 13
	case CodeNoHandler:
		return 14
	case CodeTimeout:
		return 15
	case CodeFailed:
		return 16
	case CodeUnavailable:
		return 17
	case CodeInternal:
		return 18
	}
	return -1
}

// Strike reports whether an error with this code counts against the
// client's strike budget (it was caused by the client's input).
func Strike(code string) bool {
	switch code {
	case CodeNoHandler, CodeTimeout, CodeFailed, CodeUnavailable, CodeInternal:
		return false
	}
	return true
}

// WebSocket close codes the server uses besides the RFC 6455 ones.
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseTooBig       = 1009
	CloseInternal     = 1011
	CloseBadFrames    = 4000
	CloseUnauthorized = 4001
	CloseHelloTimeout = 4002
	CloseReplaced     = 4003
	CloseVersion      = 4005
	// CloseTooMany: the identity has as many connections open as the
	// host allows (Bridge option MaxConnections).
	CloseTooMany = 4006
	CloseSlow    = 4008
	// CloseDisconnected: the host disconnected the client (Bridge.Disconnect);
	// the session waits for it to reconnect and resume.
	CloseDisconnected = 4009
)

// Headers the server sets on every publish of a client: who published it.
// Header names starting with HeaderPrefix, in any case, are the server's; a
// client's own headers under such names are dropped.
const (
	HeaderPrefix  = "courier-"
	HeaderUser    = "courier-user"    // the identity's ID; absent for anonymous clients
	HeaderSession = "courier-session" // the session id: the publisher's member id
)

// Start values of a subscribe frame.
const (
	StartNew   = "new"
	StartFirst = "first"
	StartSeq   = "seq"
	StartAfter = "after"
)

// Epoch is a stream epoch. It travels as a decimal string, because it uses
// all 64 bits and JavaScript numbers would round it; a number is accepted on
// input too.
type Epoch uint64

// MarshalJSON encodes e as a decimal string.
func (e Epoch) MarshalJSON() ([]byte, error) {
	b := strconv.AppendUint(append(make([]byte, 0, 22), '"'), uint64(e), 10)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts a decimal string ("123") or a number (123).
func (e *Epoch) UnmarshalJSON(b []byte) error {
	s := b
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return fmt.Errorf("wire: epoch %s: not a decimal uint64", b)
	}
	*e = Epoch(v)
	return nil
}

// SubState is one subscription in a welcome frame.
type SubState struct {
	Sub       string `json:"sub"`
	Pattern   string `json:"pattern"`
	Recovered bool   `json:"recovered"`
}

// Member is one room member in a presence frame.
type Member struct {
	Member string `json:"member"`
	User   string `json:"user,omitempty"`
	Away   bool   `json:"away"` // disconnected, its session waiting for a resume
}

// Limits are the server's limits, reported in the welcome frame.
type Limits struct {
	Frame    int     `json:"frame"`
	Message  int     `json:"message"`
	Subs     int     `json:"subs"`
	Rate     float64 `json:"rate"`
	Burst    int     `json:"burst"`
	Inflight int     `json:"inflight"`
	Outbound int     `json:"outbound"`
}

// Frame is any frame of the protocol: the members a given op uses are set,
// the others are zero and left out of the JSON.
type Frame struct {
	Op string `json:"op"`
	ID string `json:"id,omitempty"`
	V  int    `json:"v,omitempty"`

	// hello, welcome
	Auth      json.RawMessage `json:"auth,omitempty"`
	Resume    string          `json:"resume,omitempty"`
	Session   string          `json:"session,omitempty"`
	Heartbeat int64           `json:"heartbeat,omitempty"`
	Resumed   *bool           `json:"resumed,omitempty"`
	Subs      []SubState      `json:"subs,omitempty"`
	Rooms     []string        `json:"rooms,omitempty"`
	Limits    *Limits         `json:"limits,omitempty"`

	// subscribe, subscribed, message, ack, nack, resync
	Sub         string `json:"sub,omitempty"`
	Pattern     string `json:"pattern,omitempty"`
	Start       string `json:"start,omitempty"`
	Volatile    bool   `json:"volatile,omitempty"`
	MaxInflight int    `json:"max_inflight,omitempty"`
	AckWait     int64  `json:"ack_wait,omitempty"`
	MaxDeliver  int    `json:"max_deliver,omitempty"`
	Recovered   *bool  `json:"recovered,omitempty"`
	N           uint64 `json:"n,omitempty"`
	Upto        uint64 `json:"upto,omitempty"`
	Attempt     int    `json:"attempt,omitempty"`
	Delay       int64  `json:"delay,omitempty"`

	// message, publish, puback, request, reply
	Topic      string            `json:"topic,omitempty"`
	Epoch      Epoch             `json:"epoch,omitempty"`
	Seq        uint64            `json:"seq,omitempty"`
	To         []string          `json:"to,omitempty"`
	Except     []string          `json:"except,omitempty"`
	ExceptSelf bool              `json:"except_self,omitempty"`
	PID        string            `json:"pid,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Timeout    int64             `json:"timeout,omitempty"`
	Data       json.RawMessage   `json:"data,omitempty"`
	Data64     []byte            `json:"data64,omitempty"`

	// presence, presence_event
	Room    string   `json:"room,omitempty"`
	Watch   *bool    `json:"watch,omitempty"`
	Members []Member `json:"members,omitempty"`
	Member  string   `json:"member,omitempty"`
	User    string   `json:"user,omitempty"`
	Joined  *bool    `json:"joined,omitempty"`
	Away    *bool    `json:"away,omitempty"`

	// error, failed reply
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Bool returns a pointer to v, for the optional booleans of a Frame.
func Bool(v bool) *bool { return &v }

// Error is a decoding failure: Code is CodeBadJSON or CodeBadFrame, ID the
// frame's id when it could be read.
type Error struct {
	Code string
	ID   string
	Err  error
}

// Error returns the code and cause.
func (e *Error) Error() string { return "wire: " + e.Code + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

var (
	errNotObject = errors.New("not a JSON object")
	errNoOp      = errors.New(`missing "op"`)
)

// Split returns the frames of one WebSocket message: the message itself when
// it holds one JSON object, the elements of a JSON array otherwise, as
// slices of msg. It does not decode the frames (see Parse).
func Split(msg []byte) ([][]byte, error) {
	t := bytes.TrimLeft(msg, " \t\r\n")
	if len(t) == 0 {
		return nil, &Error{Code: CodeBadJSON, Err: errors.New("empty message")}
	}
	switch t[0] {
	case '{':
		return [][]byte{msg}, nil
	case '[':
		if out, ok := splitArray(msg, len(msg)-len(t)); ok {
			return out, nil
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(msg, &raws); err != nil {
			return nil, &Error{Code: CodeBadJSON, Err: err}
		}
		out := make([][]byte, len(raws))
		for i, r := range raws {
			out[i] = r
		}
		return out, nil
	}
	return nil, &Error{Code: CodeBadJSON, Err: errNotObject}
}

// Parse decodes one frame. A failure is an *Error: CodeBadJSON when raw is
// not a JSON object, CodeBadFrame when a member has the wrong type or "op"
// is missing; its ID is the frame's id when that much could be read. Raw
// JSON members (data, auth) are compacted, and empty arrays and objects
// become nil, so that a decoded frame re-encodes and decodes to an equal one.
func Parse(raw []byte) (Frame, error) {
	var f Frame
	t := bytes.TrimLeft(raw, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return f, &Error{Code: CodeBadJSON, Err: errNotObject}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		var se *json.SyntaxError
		code := CodeBadFrame
		if errors.As(err, &se) || !json.Valid(raw) {
			code = CodeBadJSON
		}
		return Frame{}, &Error{Code: code, ID: peekID(raw), Err: err}
	}
	if f.Op == "" {
		return f, &Error{Code: CodeBadFrame, ID: f.ID, Err: errNoOp}
	}
	f.normalize()
	return f, nil
}

// peekID reads the id of a frame that did not decode, if it can.
func peekID(raw []byte) string {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(p.ID, &id) != nil {
		return ""
	}
	return id
}

func (f *Frame) normalize() {
	f.Data = compact(f.Data)
	f.Auth = compact(f.Auth)
	if len(f.Subs) == 0 {
		f.Subs = nil
	}
	if len(f.Rooms) == 0 {
		f.Rooms = nil
	}
	if len(f.To) == 0 {
		f.To = nil
	}
	if len(f.Except) == 0 {
		f.Except = nil
	}
	if len(f.Headers) == 0 {
		f.Headers = nil
	}
	if len(f.Members) == 0 {
		f.Members = nil
	}
	if len(f.Data64) == 0 {
		f.Data64 = nil
	}
}

// compact removes insignificant white space from a raw JSON value.
func compact(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return nil
	}
	if bytes.IndexAny(r, " \t\r\n") < 0 {
		return r
	}
	var b bytes.Buffer
	if json.Compact(&b, r) != nil {
		return r
	}
	return b.Bytes()
}

// Encode returns the JSON of f.
func Encode(f *Frame) ([]byte, error) { return json.Marshal(f) }

// PeekID returns the "id" of a frame without decoding the rest, or "".
func PeekID(raw []byte) string { return peekID(raw) }
