package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	eventbus "github.com/asaskevich/EventBus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/courierbus/courier/bench/internal/bench"
)

// InProc returns every in-process implementation, baseline first.
func InProc() []bench.InProc {
	return []bench.InProc{
		bench.Channels(),
		bench.Courier(bench.AtMostOnce),
		bench.Courier(bench.AtLeastOnce),
		EventBus(),
		NATS(),
		Watermill(),
	}
}

// topicOf is the topic (or subject) a subscriber listens on: one topic
// for the plain shapes, one per room for the rooms shape (the peers have
// no rooms: a topic per room is how their users would do it).
func topicOf(sh bench.Shape, i int) string {
	if sh.Rooms > 0 {
		return fmt.Sprintf("bench.room%d", i%sh.Rooms)
	}
	return "bench.events"
}

func publishTopic(sh bench.Shape) string {
	if sh.Rooms > 0 {
		return "bench.room3"
	}
	return "bench.events"
}

// EventBus is github.com/asaskevich/EventBus: handlers take the Go value
// (called through reflection) and run synchronously on the publisher's
// goroutine, under the bus's lock.
func EventBus() bench.InProc {
	return bench.InProc{
		Name: "eventbus", Mode: bench.AtMostOnce,
		Note: "asaskevich/EventBus, Subscribe/Publish of the Go value; handlers run on the publisher's goroutine",
		Open: func(sh bench.Shape) (bench.Flow, error) {
			b := eventbus.New()
			sinks := bench.NewSinks(sh.Subs)
			for i := range sh.Subs {
				if err := b.Subscribe(topicOf(sh, i), func(ev bench.Event) {
					_ = ev.ID
					sinks.Add(i)
				}); err != nil {
					return nil, err
				}
			}
			topic := publishTopic(sh)
			return &flow{sh: sh, sinks: sinks, send: func(p, i int) error {
				b.Publish(topic, bench.Event{ID: i, Kind: p})
				return nil
			}}, nil
		},
	}
}

// flow is a bench.Flow over a send function and counting subscribers.
type flow struct {
	sh    bench.Shape
	sinks *bench.Sinks
	send  func(p, i int) error
	after func() error // after publishing (a flush), optional
	close func() error
}

func (f *flow) Run(ctx context.Context, n int) (int64, error) {
	f.sinks.Reset()
	sent, err := bench.Publish(ctx, f.sh.Pubs, n, f.send)
	if f.after != nil && err == nil {
		err = f.after()
	}
	return f.sinks.Wait(sent*int64(f.sh.Recipients()), bench.DrainTimeout), err
}

func (f *flow) Close() error {
	if f.close == nil {
		return nil
	}
	return f.close()
}

// Watermill is Watermill's gochannel Pub/Sub: messages are bytes (the
// event as JSON) with a UUID; each subscriber decodes and acks. It is
// ack-based: an unacked message is not followed by the next, a nacked one
// is sent again.
func Watermill() bench.InProc {
	return bench.InProc{
		Name: "watermill", Mode: bench.AtLeastOnce,
		Note: "Watermill gochannel (OutputChannelBuffer 1024), JSON payload, NewUUID per message, Ack per delivery",
		Open: func(sh bench.Shape) (bench.Flow, error) {
			ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
			ctx, cancel := context.WithCancel(context.Background())
			sinks := bench.NewSinks(sh.Subs)
			var wg sync.WaitGroup
			for i := range sh.Subs {
				msgs, err := ps.Subscribe(ctx, topicOf(sh, i))
				if err != nil {
					cancel()
					return nil, err
				}
				wg.Go(func() {
					for msg := range msgs {
						var ev bench.Event
						if json.Unmarshal(msg.Payload, &ev) == nil {
							msg.Ack()
							sinks.Add(i)
						} else {
							msg.Nack()
						}
					}
				})
			}
			topic := publishTopic(sh)
			return &flow{sh: sh, sinks: sinks,
				send: func(p, i int) error {
					payload, err := json.Marshal(bench.Event{ID: i, Kind: p})
					if err != nil {
						return err
					}
					return ps.Publish(topic, message.NewMessage(watermill.NewUUID(), payload))
				},
				close: func() error {
					cancel()
					err := ps.Close()
					wg.Wait()
					return err
				}}, nil
		},
	}
}

// StartNATS starts an embedded NATS server that listens on no port
// (clients connect in-process); with storeDir it has JetStream with file
// storage there, and sync makes it fsync every write (SyncAlways).
func StartNATS(storeDir string, sync bool) (*server.Server, error) {
	opts := &server.Options{
		DontListen: true, NoSigs: true, NoLog: true,
		MaxPending:    1 << 30, // no slow-consumer drops in a benchmark
		WriteDeadline: 30 * time.Second,
	}
	if storeDir != "" {
		opts.JetStream, opts.StoreDir, opts.SyncAlways = true, storeDir, sync
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("peers: nats server not ready")
	}
	return ns, nil
}

// connect opens an in-process connection to ns.
func connect(ns *server.Server) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(ns), nats.NoReconnect())
}

// NATS is core NATS (at-most-once) embedded, with in-process connections:
// one for the publishers, one for the subscribers; every subscriber an
// async subscription with no pending limits, decoding the JSON.
func NATS() bench.InProc {
	return bench.InProc{
		Name: "nats", Mode: bench.AtMostOnce,
		Note: "nats-server embedded, core NATS over in-process connections (one publishing, one subscribing), JSON",
		Open: func(sh bench.Shape) (bench.Flow, error) {
			ns, err := StartNATS("", false)
			if err != nil {
				return nil, err
			}
			pub, err := connect(ns)
			if err != nil {
				ns.Shutdown()
				return nil, err
			}
			subc, err := connect(ns)
			if err != nil {
				pub.Close()
				ns.Shutdown()
				return nil, err
			}
			closeAll := func() error {
				pub.Close()
				subc.Close()
				ns.Shutdown()
				ns.WaitForShutdown()
				return nil
			}
			sinks := bench.NewSinks(sh.Subs)
			for i := range sh.Subs {
				s, err := subc.Subscribe(topicOf(sh, i), func(m *nats.Msg) {
					var ev bench.Event
					if json.Unmarshal(m.Data, &ev) == nil {
						sinks.Add(i)
					}
				})
				if err == nil {
					err = s.SetPendingLimits(-1, -1)
				}
				if err != nil {
					closeAll()
					return nil, err
				}
			}
			if err := subc.Flush(); err != nil {
				closeAll()
				return nil, err
			}
			subject := publishTopic(sh)
			return &flow{sh: sh, sinks: sinks,
				send: func(p, i int) error {
					data, err := json.Marshal(bench.Event{ID: i, Kind: p})
					if err != nil {
						return err
					}
					return pub.Publish(subject, data)
				},
				after: pub.Flush,
				close: closeAll}, nil
		},
	}
}
