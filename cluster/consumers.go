package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go/jetstream"
)

func key(parts ...string) string {
	for i, p := range parts {
		parts[i] = base64.RawURLEncoding.EncodeToString([]byte(p))
	}
	return strings.Join(parts, ".")
}

// Consumer implements [bus.Store]: positions live in a key-value bucket,
// so a durable consumer has one position in the whole cluster.
func (n *Node) Consumer(ctx context.Context, topic, name string) (bus.ConsumerState, bool, error) {
	if n.shut.Load() {
		return bus.ConsumerState{}, false, errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	e, err := n.kvC.Get(ctx, key(topic, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.ConsumerState{}, false, nil
	}
	if err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("cluster: consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	var s bus.ConsumerState
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return bus.ConsumerState{}, false, fmt.Errorf("cluster: consumer %q of %q: %v", name, topic, err)
	}
	return s, true, nil
}

// SaveConsumer implements [bus.Store].
func (n *Node) SaveConsumer(ctx context.Context, topic, name string, s bus.ConsumerState) error {
	if n.shut.Load() {
		return errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	v, _ := json.Marshal(s)
	if _, err := n.kvC.Put(ctx, key(topic, name), v); err != nil {
		return fmt.Errorf("cluster: save consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	return nil
}

// DeleteConsumer implements [bus.Store].
func (n *Node) DeleteConsumer(ctx context.Context, topic, name string) error {
	if n.shut.Load() {
		return errClosed
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	if err := n.kvC.Purge(ctx, key(topic, name)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster: delete consumer %q of %q: %w", name, topic, n.wrap(err))
	}
	return nil
}
