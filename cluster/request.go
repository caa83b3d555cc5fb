package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/courierbus/courier/bus"
	"github.com/nats-io/nats.go"
)

// ---- request and reply

// Serve implements [bus.RequestBroker]: this node answers requests to
// name, sharing them with the other nodes that serve it (a NATS queue
// group).
func (n *Node) Serve(name string, h func(ctx context.Context, data []byte) ([]byte, error)) (func(), error) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxServing)
	s, err := n.nc.QueueSubscribe(n.cfg.Prefix+".r."+name, "courier", func(m *nats.Msg) {
		wait := n.cfg.Timeout
		if ms, err := strconv.ParseInt(m.Header.Get(hWait), 10, 64); err == nil && ms > 0 {
			wait = min(time.Duration(ms)*time.Millisecond, time.Hour)
		}
		select {
		case slots <- struct{}{}:
		default:
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(hErr, fmt.Sprintf("cluster: %s: more than %d requests in progress on node %s", name, maxServing, n.cfg.Name))
			m.RespondMsg(reply)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(n.ctx, wait)
			defer cancel()
			out, err := h(ctx, m.Data)
			reply := nats.NewMsg(m.Reply)
			if err != nil {
				reply.Header.Set(hErr, err.Error())
				if errors.Is(err, bus.ErrNoHandler) {
					reply.Header.Set(hCode, "no_handler")
				}
			} else {
				reply.Data = out
			}
			m.RespondMsg(reply)
		}()
	})
	if err != nil {
		return nil, n.wrap(err)
	}
	// Make the server know it before Handle returns; other servers learn
	// it through their routes, within moments.
	n.nc.Flush()
	return func() {
		s.Unsubscribe()
		wg.Wait()
	}, nil
}

// maxServing bounds the requests from other nodes one endpoint serves at
// once on a node; more are refused at once rather than queued without
// bound.
const maxServing = 1024

// RemoteError is the error of a handler on another node.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Request implements [bus.RequestBroker].
func (n *Node) Request(ctx context.Context, name string, data []byte) ([]byte, error) {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	m := nats.NewMsg(n.cfg.Prefix + ".r." + name)
	m.Data = data
	if dl, ok := ctx.Deadline(); ok {
		m.Header.Set(hWait, strconv.FormatInt(max(1, time.Until(dl).Milliseconds()), 10))
	}
	r, err := n.nc.RequestMsgWithContext(ctx, m)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: %q", bus.ErrNoHandler, name)
	}
	if err != nil {
		return nil, n.wrap(err)
	}
	if msg := r.Header.Get(hErr); msg != "" {
		if r.Header.Get(hCode) == "no_handler" {
			return nil, fmt.Errorf("%w: %q", bus.ErrNoHandler, name)
		}
		return nil, &RemoteError{Msg: msg}
	}
	return r.Data, nil
}

var (
	_ bus.Broker         = (*Node)(nil)
	_ bus.VolatileBroker = (*Node)(nil)
	_ bus.PresenceBroker = (*Node)(nil)
	_ bus.RequestBroker  = (*Node)(nil)
	_ bus.GroupBroker    = (*Node)(nil)
	_ bus.HistoryChecker = (*Node)(nil)
	_ bus.EpochAppender  = (*Node)(nil)
)
