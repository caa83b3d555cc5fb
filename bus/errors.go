package bus

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every operation of a [Bus] after Close or
	// Shutdown has begun, and (wrapped) by every [Store] after its Close.
	ErrClosed = errors.New("bus: closed")

	// ErrInvalidTopic is returned when a topic name or subscription pattern
	// breaks the naming rules (see package doc, Topic names).
	ErrInvalidTopic = errors.New("bus: invalid topic")

	// ErrTypeMismatch is returned by NewTopic when the name is already bound
	// to another Go type, and by raw publishes whose bytes do not decode into
	// the topic's type.
	ErrTypeMismatch = errors.New("bus: type mismatch")

	// ErrNotCovered is returned when a read or subscription asks for a stream
	// position the history no longer holds (trimmed, or from another epoch).
	ErrNotCovered = errors.New("bus: position not covered by history")

	// ErrNoHandler is returned by Request when no handler serves the topic.
	ErrNoHandler = errors.New("bus: no handler")

	// ErrInHandler is returned by [Bus.Shutdown] called from a handler of
	// the bus, which would wait for the delivery it is part of.
	ErrInHandler = errors.New("bus: called from a handler of the bus")

	// ErrQueueFull is returned by Publish when a subscription with the Block
	// policy is full and the publisher is that subscription's own handler
	// (blocking would deadlock).
	ErrQueueFull = errors.New("bus: subscription queue full")

	// ErrSlowConsumer ends a subscription with the Disconnect policy whose
	// queue overflowed. It is the cause passed to the subscription's
	// OnEnd callback.
	ErrSlowConsumer = errors.New("bus: slow consumer disconnected")

	// ErrUnsubscribed is returned by operations on a subscription that ended.
	ErrUnsubscribed = errors.New("bus: subscription ended")

	// ErrDurableActive is returned by Subscribe when another live
	// subscription already uses the durable name on the topic.
	ErrDurableActive = errors.New("bus: durable consumer already active")

	// ErrNotManual is returned by Ack, Nack, InProgress and Term on a
	// message whose subscription does not use ManualAck.
	ErrNotManual = errors.New("bus: message is acknowledged by the handler's return")

	// ErrAlreadyAcked is returned by Ack, Nack and Term when the delivery
	// was already settled.
	ErrAlreadyAcked = errors.New("bus: delivery already settled")

	// ErrInvalidOption is returned when options contradict each other or are
	// out of range.
	ErrInvalidOption = errors.New("bus: invalid option")

	// ErrMemberRemoved is returned by operations on a removed member.
	ErrMemberRemoved = errors.New("bus: member removed")

	// ErrTooManyTopics is returned by whatever would create a topic (a
	// publish, a subscription to an exact name, NewTopic, a join of a new
	// room) once the bus has [MaxTopics] topics.
	ErrTooManyTopics = errors.New("bus: too many topics")
)

// HandlerError is the error recorded when a handler panicked. Its Value is
// what the handler panicked with.
type HandlerError struct {
	Value any
}

func (e *HandlerError) Error() string { return fmt.Sprintf("bus: handler panicked: %v", e.Value) }
