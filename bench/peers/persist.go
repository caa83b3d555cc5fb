package peers

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/courierbus/courier/bench/internal/bench"
)

// Writers returns every persisted publish implementation, baseline first.
func Writers() []bench.Writer {
	return []bench.Writer{
		bench.RawWriteBatch(),
		bench.StoreAppend(bench.Synced),
		bench.StoreAppend(bench.Buffered),
		bench.BusPublish(bench.Synced),
		bench.BusPublish(bench.Buffered),
		JetStream(bench.Synced),
		JetStream(bench.Buffered),
	}
}

// Replayers returns every replay implementation, baseline first.
func Replayers() []bench.Replayer {
	return []bench.Replayer{bench.RawReplay(), bench.StoreReplay(), bench.BusReplay(), JetStreamReplay()}
}

// jsStream is an embedded NATS server with a file-storage stream.
type jsStream struct {
	ns *server.Server
	nc *nats.Conn
	js jetstream.JetStream
}

const jsSubject = "bench.persist"

func openJS(dir string, sync bool) (*jsStream, error) {
	ns, err := StartNATS(dir, sync)
	if err != nil {
		return nil, err
	}
	s := &jsStream{ns: ns}
	if s.nc, err = connect(ns); err == nil {
		if s.js, err = jetstream.New(s.nc); err == nil {
			_, err = s.js.CreateStream(context.Background(), jetstream.StreamConfig{
				Name: "BENCH", Subjects: []string{jsSubject}, Storage: jetstream.FileStorage,
			})
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *jsStream) Close() error {
	if s.nc != nil {
		s.nc.Close()
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	return nil
}

// JetStream is NATS JetStream embedded, file storage, one in-process
// connection shared by the publishers, each calling Publish (which waits
// for the stream's ack) with the 64-byte record. Synced is the server's
// SyncAlways (fsync per write); buffered its default (fsync every two
// minutes).
func JetStream(mode string) bench.Writer {
	return bench.Writer{
		Name: "jetstream", Mode: mode,
		Note: "nats-server embedded, JetStream file storage, js.Publish (waits for the ack) over one in-process connection",
		Open: func(dir string, pubs int) (bench.WriteFlow, error) {
			s, err := openJS(dir, mode == bench.Synced)
			if err != nil {
				return nil, err
			}
			data := bench.RecordData()
			return bench.FuncFlow(pubs, func(ctx context.Context, p, i int) error {
				_, err := s.js.Publish(ctx, jsSubject, data)
				return err
			}, s.Close), nil
		},
	}
}

// JetStreamReplay reads the stream from the start with an ordered
// consumer (no acks), the JetStream way to catch up.
func JetStreamReplay() bench.Replayer {
	return bench.Replayer{
		Name: "jetstream", Note: "JetStream ordered consumer from the first message, Consume callback",
		Open: func(dir string, n int) (bench.ReplayFlow, error) {
			s, err := openJS(dir, false)
			if err != nil {
				return nil, err
			}
			data := bench.RecordData()
			for i := 0; i < n; i++ {
				if _, err := s.js.PublishAsync(jsSubject, data); err != nil {
					s.Close()
					return nil, err
				}
			}
			select {
			case <-s.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				s.Close()
				return nil, errors.New("peers: jetstream fill timed out")
			}
			return &jsReplay{s: s, n: n}, nil
		},
	}
}

type jsReplay struct {
	s *jsStream
	n int
}

func (r *jsReplay) Run(ctx context.Context) (int64, error) {
	cons, err := r.s.js.OrderedConsumer(ctx, "BENCH", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, err
	}
	sinks := bench.NewSinks(1)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		_ = msg.Data()
		sinks.Add(0)
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	d := bench.DrainTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return sinks.Wait(int64(r.n), d), nil
}

func (r *jsReplay) Close() error { return r.s.Close() }
