package bridge

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Request after Close or Shutdown has begun.
	ErrClosed = errors.New("bridge: closed")

	// ErrUnauthorized may be returned by an [Authenticate] hook to refuse a
	// request with HTTP 401; any error other than ErrForbidden does the same.
	// A hook given with [HelloAuth] returns it (or any error) to refuse a
	// hello: the client gets the error code "unauthorized" and close code
	// 4001.
	ErrUnauthorized = errors.New("bridge: unauthorized")

	// ErrForbidden may be returned by an [Authenticate] hook to refuse a
	// request with HTTP 403, and by an [Authorize] hook to refuse an action
	// (the client gets the error code "forbidden").
	ErrForbidden = errors.New("bridge: forbidden")

	// ErrNoSession is returned by Request and Disconnect when no live
	// session has the id (it never existed, or it ended).
	ErrNoSession = errors.New("bridge: no such session")

	// ErrNotConnected is returned by Request and Disconnect when the
	// session exists but has no connection (it is waiting for its client to
	// resume), and by Request when the connection drops before the client
	// replied.
	ErrNotConnected = errors.New("bridge: session not connected")

	// ErrInvalidOption is returned by New when options are out of range or
	// contradict each other.
	ErrInvalidOption = errors.New("bridge: invalid option")
)

// ReplyError is returned by [Bridge.Request] when the client answered
// with a failure. Code is the protocol error code (e.g. "no_handler",
// "failed").
type ReplyError struct {
	Code    string
	Message string
}

// Error returns the code and message.
func (e *ReplyError) Error() string {
	return fmt.Sprintf("bridge: client replied %s: %s", e.Code, e.Message)
}
