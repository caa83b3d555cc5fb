package observe

import "errors"

var (
	// ErrInvalidOption is returned by NewCollector and NewAdmin when an
	// option is out of range or a required argument is missing.
	ErrInvalidOption = errors.New("observe: invalid option")

	// ErrUnauthorized may be returned (wrapped) by an [Authorize] hook to
	// refuse a request with HTTP 401; any error other than ErrForbidden
	// does the same.
	ErrUnauthorized = errors.New("observe: unauthorized")

	// ErrForbidden may be returned (wrapped) by an [Authorize] hook to
	// refuse a request with HTTP 403.
	ErrForbidden = errors.New("observe: forbidden")

	// ErrUnsupported is what an admin action answers (HTTP 501) when the
	// admin lacks what it needs: disconnecting a client needs a bridge
	// ([WithBridge]).
	ErrUnsupported = errors.New("observe: not supported by this bridge")
)
