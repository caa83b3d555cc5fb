package client

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("client: closed")

	// ErrNotConnected is returned by Request and by Publish without
	// Ack while the client is reconnecting.
	ErrNotConnected = errors.New("client: not connected")

	// ErrDisconnected is returned by Request when the connection dropped
	// before the answer came.
	ErrDisconnected = errors.New("client: connection lost before the answer")
)

// Error is an error frame from the server (or a failed reply): Code is one
// of the protocol's error codes (docs/protocol.md, section 3). Compare with
// errors.Is against the Err* values of type *Error, which match by code.
type Error struct {
	Code    string
	Message string
}

// Error returns the code and message.
func (e *Error) Error() string { return fmt.Sprintf("client: %s: %s", e.Code, e.Message) }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errors by protocol code, for errors.Is.
var (
	ErrForbidden    = &Error{Code: "forbidden"}
	ErrInvalidName  = &Error{Code: "invalid_name"}
	ErrTypeMismatch = &Error{Code: "type_mismatch"}
	ErrNoHandler    = &Error{Code: "no_handler"}
	ErrTimeout      = &Error{Code: "timeout"}
	ErrFailed       = &Error{Code: "failed"}
	ErrLimit        = &Error{Code: "limit"}
	ErrConflict     = &Error{Code: "conflict"}
	ErrNotFound     = &Error{Code: "not_found"}
	ErrRateLimited  = &Error{Code: "rate_limited"}
	ErrTooLarge     = &Error{Code: "too_large"}
	ErrBadFrame     = &Error{Code: "bad_frame"}
	ErrUnavailable  = &Error{Code: "unavailable"}
	ErrUnauthorized = &Error{Code: "unauthorized"}
)
