package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
)

// Endpoint is a request/reply topic: requests of type Req answered with
// Resp. Make one with [NewEndpoint]; it is safe for concurrent use.
type Endpoint[Req, Resp any] struct {
	b     *Bus
	name  string
	codec Codec
}

// NewEndpoint returns the endpoint called name. Several handlers may serve
// one endpoint; each request goes to one of them, in turn. Binding the name
// again with other types is [ErrTypeMismatch].
func NewEndpoint[Req, Resp any](b *Bus, name string, opts ...TopicOption) (*Endpoint[Req, Resp], error) {
	if err := ValidateTopic(name); err != nil {
		return nil, err
	}
	if reserved(name) {
		return nil, fmt.Errorf("%w: %q is reserved for the bus", ErrInvalidTopic, name)
	}
	if b.closed() {
		return nil, ErrClosed
	}
	cfg := b.cfg.topic
	for _, o := range opts {
		o.applyTopic(&cfg)
	}
	types := [2]reflect.Type{reflect.TypeFor[Req](), reflect.TypeFor[Resp]()}
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.endpoints[name]
	if set == nil {
		set = &endpointSet{types: types}
		b.endpoints[name] = set
	} else if set.types != types {
		return nil, fmt.Errorf("%w: endpoint %q serves %v -> %v", ErrTypeMismatch, name, set.types[0], set.types[1])
	}
	return &Endpoint[Req, Resp]{b: b, name: name, codec: cfg.codec}, nil
}

// Name returns the endpoint's name.
func (e *Endpoint[Req, Resp]) Name() string { return e.name }

// HandleOption configures [Endpoint.Handle].
type HandleOption interface{ applyHandle(*handleConfig) }

type handleConfig struct{ workers, queue int }

type concurrencyOpt struct{ n int }

func (o concurrencyOpt) applyHandle(c *handleConfig) { c.workers = o.n }

// Concurrency sets how many requests one handler serves at once. Default 4.
func Concurrency(n int) HandleOption { return concurrencyOpt{n} }

// Handle serves the endpoint with h until the returned [Responder] is stopped
// or the bus closes. h gets the requester's context: it ends when the
// requester stops waiting.
func (e *Endpoint[Req, Resp]) Handle(h func(ctx context.Context, req Req) (Resp, error), opts ...HandleOption) (*Responder, error) {
	hc := handleConfig{workers: 4, queue: 64}
	for _, o := range opts {
		o.applyHandle(&hc)
	}
	if hc.workers < 1 {
		return nil, fmt.Errorf("%w: Concurrency must be positive", ErrInvalidOption)
	}
	serve := func(ctx context.Context, r *request) {
		var resp Resp
		var err error
		if r.raw != nil {
			var req Req
			if err = e.codec.Decode(r.raw, &req); err != nil {
				err = fmt.Errorf("%w: endpoint %q: %v", ErrTypeMismatch, e.name, err)
			} else {
				resp, err = h(ctx, req)
			}
		} else {
			resp, err = h(ctx, r.value.(Req))
		}
		r.resp, r.err = resp, err
		if err == nil && r.raw != nil {
			r.rawResp, r.err = e.codec.Encode(resp)
		}
	}
	return e.b.handle(e.name, serve, hc)
}

// Request sends req to one handler of the endpoint and waits for its reply.
// It returns [ErrNoHandler] at once when no handler serves the endpoint, the
// handler's error when it fails, and ctx.Err() when ctx ends first.
func (e *Endpoint[Req, Resp]) Request(ctx context.Context, req Req) (Resp, error) {
	var zero Resp
	r, err := e.b.request(ctx, e.name, &request{value: req})
	if errors.Is(err, ErrNoHandler) {
		if rb, ok := e.b.cfg.broker.(RequestBroker); ok {
			return remoteRequest[Resp](ctx, rb, e.name, e.codec, req)
		}
	}
	if err != nil {
		return zero, err
	}
	if r.err != nil {
		return zero, r.err
	}
	return r.resp.(Resp), nil
}

// RequestRaw is Request with encoded bytes, for a bridge: the request is
// decoded with the endpoint's codec and the reply encoded with it.
func (b *Bus) RequestRaw(ctx context.Context, name string, data []byte) ([]byte, error) {
	if err := ValidateTopic(name); err != nil {
		return nil, err
	}
	r, err := b.request(ctx, name, &request{raw: data})
	if errors.Is(err, ErrNoHandler) {
		if rb, ok := b.cfg.broker.(RequestBroker); ok {
			return rb.Request(ctx, name, data)
		}
	}
	if err != nil {
		return nil, err
	}
	return r.rawResp, r.err
}

// remoteRequest asks another bus's handler, through the broker.
func remoteRequest[Resp any](ctx context.Context, rb RequestBroker, name string, codec Codec, req any) (Resp, error) {
	var resp Resp
	data, err := codec.Encode(req)
	if err != nil {
		return resp, fmt.Errorf("bus: encode request to %q: %w", name, err)
	}
	out, err := rb.Request(ctx, name, data)
	if err != nil {
		return resp, err
	}
	if err := codec.Decode(out, &resp); err != nil {
		return resp, fmt.Errorf("%w: reply of %q: %v", ErrTypeMismatch, name, err)
	}
	return resp, nil
}

// serveRemote offers the endpoint's local handlers to the other buses
// while it has some and the bus is open, and withdraws them otherwise. The
// broker is called with no lock held; calls for one endpoint never
// overlap: one asked for while another runs is left to that one, which
// looks again when it is done.
func (b *Bus) serveRemote(name string, set *endpointSet) {
	rb, ok := b.cfg.broker.(RequestBroker)
	if !ok {
		return
	}
	r := &set.remote
	r.mu.Lock()
	if r.busy {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.busy = true
	var errs []error
	for {
		r.again = false
		want := len(set.list()) > 0 && !b.closed()
		switch {
		case want && r.stop == nil:
			r.mu.Unlock()
			stop, err := rb.Serve(name, func(ctx context.Context, data []byte) ([]byte, error) {
				r, err := b.request(ctx, name, &request{raw: data})
				if err != nil {
					return nil, err
				}
				return r.rawResp, r.err
			})
			r.mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				r.stop = stop
				r.again = true // the bus may have closed meanwhile
			}
		case !want && r.stop != nil:
			stop := r.stop
			r.stop = nil
			r.mu.Unlock()
			stop()
			r.mu.Lock()
		}
		if !r.again {
			break
		}
	}
	r.busy = false
	r.mu.Unlock()
	for _, err := range errs {
		b.log.Error("bus: offer endpoint to the broker", "endpoint", name, "err", err)
	}
}

// Responder is one handler serving an endpoint.
type Responder struct {
	b     *Bus
	name  string
	serve func(context.Context, *request)
	reqs  chan *request
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type request struct {
	ctx     context.Context
	value   any
	raw     []byte
	resp    any
	rawResp []byte
	err     error
	done    chan struct{}
}

type endpointSet struct {
	types    [2]reflect.Type
	mu       sync.Mutex
	handlers []*Responder
	next     atomic.Uint32
	remote   remoteServe
}

func (s *endpointSet) list() []*Responder {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers
}

func (b *Bus) handle(name string, serve func(context.Context, *request), hc handleConfig) (*Responder, error) {
	h := &Responder{b: b, name: name, serve: serve, reqs: make(chan *request, hc.queue), quit: make(chan struct{})}
	b.mu.Lock()
	if b.closed() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	set := b.endpoints[name]
	set.mu.Lock()
	set.handlers = append(set.handlers[:len(set.handlers):len(set.handlers)], h)
	set.mu.Unlock()
	h.wg.Add(hc.workers)
	b.wg.Add(hc.workers)
	for range hc.workers {
		go func() {
			defer b.wg.Done()
			defer h.wg.Done()
			h.run()
		}()
	}
	b.mu.Unlock()
	b.serveRemote(name, set)
	return h, nil
}

func (h *Responder) run() {
	for {
		select {
		case r := <-h.reqs:
			if r.ctx.Err() == nil {
				h.call(r)
			} else {
				r.err = r.ctx.Err()
			}
			close(r.done)
		case <-h.quit:
			return
		}
	}
}

func (h *Responder) call(r *request) {
	defer func() {
		if v := recover(); v != nil {
			r.err = &HandlerError{Value: v}
			h.b.log.Error("bus: request handler panicked", "endpoint", h.name, "panic", v)
		}
	}()
	h.serve(r.ctx, r)
}

// Stop stops serving: requests not yet started fail with [ErrNoHandler];
// Stop waits for the ones in progress. It may be called more than once.
func (h *Responder) Stop() error {
	h.b.mu.RLock()
	set := h.b.endpoints[h.name]
	h.b.mu.RUnlock()
	if set != nil {
		set.mu.Lock()
		set.handlers = slicesWithout(set.handlers, h)
		set.mu.Unlock()
		h.b.serveRemote(h.name, set)
	}
	h.stop()
	h.wg.Wait()
	// Fail what was queued and never taken.
	for {
		select {
		case r := <-h.reqs:
			r.err = ErrNoHandler
			close(r.done)
		default:
			return nil
		}
	}
}

func (h *Responder) stop() { h.once.Do(func() { close(h.quit) }) }

func slicesWithout(hs []*Responder, h *Responder) []*Responder {
	out := make([]*Responder, 0, len(hs))
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}

func (b *Bus) request(ctx context.Context, name string, r *request) (*request, error) {
	if b.closed() {
		return nil, ErrClosed
	}
	b.mu.RLock()
	set := b.endpoints[name]
	b.mu.RUnlock()
	if set == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoHandler, name)
	}
	hs := set.list()
	if len(hs) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoHandler, name)
	}
	h := hs[int(set.next.Add(1))%len(hs)]
	r.ctx, r.done = ctx, make(chan struct{})
	select {
	case h.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.quit:
		return nil, fmt.Errorf("%w: %q", ErrNoHandler, name)
	case <-b.ctx.Done():
		return nil, ErrClosed
	}
	select {
	case <-r.done:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, ErrClosed
	}
}
