package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bridge/client"
	"github.com/courierbus/courier/bus"
)

// MelodyServer is the WebSocket baseline: raw melody with its defaults,
// Broadcast of the event's JSON to every session; it echoes what a client
// sends (the round trip baseline).
func MelodyServer() WSServer {
	return WSServer{Name: "melody", Start: func(mux *http.ServeMux) (WSRuntime, error) {
		m := melody.New()
		m.HandleMessage(func(s *melody.Session, msg []byte) { s.Write(msg) })
		mux.HandleFunc(WSPath, func(w http.ResponseWriter, r *http.Request) { m.HandleRequest(w, r) })
		return melodyRuntime{m}, nil
	}}
}

type melodyRuntime struct{ m *melody.Melody }

func (r melodyRuntime) Broadcast(ev WSEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return r.m.Broadcast(b)
}

func (r melodyRuntime) Close() error { return r.m.Close() }

// Melody is the baseline implementation: raw melody, with raw WebSocket
// clients that read frames (and, for round trips, get their frame echoed).
func Melody() WSImpl {
	return WSImpl{
		Name: "melody", Server: "melody",
		Note: "raw melody (default config), Broadcast of the JSON bytes; clients: gorilla/websocket readers",
		Dial: func(ctx context.Context, addr string, got func([]byte)) (io.Closer, error) {
			conn, err := DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			return ReadLoop(conn, got), nil
		},
		RoundTripper: func(ctx context.Context, addr string) (RoundTripper, error) {
			conn, err := DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			msg, _ := json.Marshal(WSEvent{Text: WSText})
			return &echoRT{conn: conn, msg: msg}, nil
		},
	}
}

type echoRT struct {
	conn *websocket.Conn
	msg  []byte
}

func (e *echoRT) RoundTrip(ctx context.Context) error {
	if err := e.conn.WriteMessage(websocket.TextMessage, e.msg); err != nil {
		return err
	}
	_, _, err := e.conn.ReadMessage()
	return err
}

func (e *echoRT) Close() error { return e.conn.Close() }

// DialWS opens a WebSocket to the server at addr, at WSPath.
func DialWS(ctx context.Context, addr string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	conn, _, err := d.DialContext(ctx, wsURL(addr), nil)
	return conn, err
}

// ReadLoop reads conn's messages on a goroutine of its own, calling got
// for each, until the returned Closer closes conn.
func ReadLoop(conn *websocket.Conn, got func([]byte)) io.Closer {
	r := &reader{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			got(data)
		}
	}()
	return r
}

type reader struct {
	conn *websocket.Conn
	done chan struct{}
	once sync.Once
}

func (r *reader) Close() error {
	r.once.Do(func() {
		r.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		r.conn.Close()
		<-r.done
	})
	return nil
}

// CourierServer is the bridge on a bus: clients may subscribe to the
// broadcast topic and publish to the round trip topic, both typed
// WSEvent topics. The broadcast is a volatile publish of the Go value
// (encoded once for every connection). The per-connection frame rate
// limit is raised for the round trip client, which sends back to back.
func CourierServer() WSServer {
	return WSServer{Name: "courier", Start: func(mux *http.ServeMux) (WSRuntime, error) {
		b, err := bus.New()
		if err != nil {
			return nil, err
		}
		tp, err := bus.NewTopic[WSEvent](b, BroadcastName)
		if err == nil {
			_, err = bus.NewTopic[WSEvent](b, RoundTripName)
		}
		if err != nil {
			b.Close()
			return nil, err
		}
		br, err := bridge.New(b,
			bridge.Expose(BroadcastName, bridge.Subscribe),
			bridge.Expose(RoundTripName, bridge.Publish),
			bridge.RateLimit(1e6, 1e6))
		if err != nil {
			b.Close()
			return nil, err
		}
		mux.Handle(WSPath, br)
		return &courierRuntime{b: b, br: br, tp: tp}, nil
	}}
}

type courierRuntime struct {
	b  *bus.Bus
	br *bridge.Bridge
	tp *bus.Topic[WSEvent]
}

func (r *courierRuntime) Broadcast(ev WSEvent) error {
	_, err := r.tp.Publish(context.Background(), ev, bus.Volatile())
	return err
}

func (r *courierRuntime) Close() error { return errors.Join(r.br.Close(), r.b.Close()) }

// Courier WS is the bridge with Go clients (bridge/client), each
// subscribed volatile to the broadcast topic; round trips are publishes
// with an id, answered by the server's puback, from a client that speaks
// the wire protocol as a browser does (raw JSON frames).
func CourierWS() WSImpl {
	return WSImpl{
		Name: "courier", Server: "courier",
		Note: "bridge on a bus, volatile publish of a typed value; clients: bridge/client, volatile subscription",
		Dial: func(ctx context.Context, addr string, got func([]byte)) (io.Closer, error) {
			c, err := client.Dial(ctx, wsURL(addr))
			if err != nil {
				return nil, err
			}
			if _, err := c.Subscribe(ctx, BroadcastName, func(_ context.Context, m *client.Message) error {
				got(m.Data)
				return nil
			}, client.Volatile()); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
		RoundTripper: func(ctx context.Context, addr string) (RoundTripper, error) {
			conn, err := DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			rt := &protoRT{conn: conn}
			if err := rt.call([]byte(`{"op":"hello","v":1,"id":"h"}`), `"id":"h"`, "welcome"); err != nil {
				conn.Close()
				return nil, err
			}
			rt.data, _ = json.Marshal(WSEvent{Text: WSText})
			return rt, nil
		},
	}
}

// CourierRaw is the bridge with clients that speak the wire protocol as
// raw frames (hello, a volatile subscribe, then reading), as a browser
// does and as the melody and Centrifuge clients do: the same server as
// CourierWS, with clients as cheap as the baseline's.
func CourierRaw() WSImpl {
	return WSImpl{
		Name: "courier-raw", Server: "courier",
		Note: "the same bridge; clients: its wire protocol as raw frames over gorilla/websocket, volatile subscription",
		Dial: func(ctx context.Context, addr string, got func([]byte)) (io.Closer, error) {
			conn, err := DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			p := &protoRT{conn: conn}
			err = p.call([]byte(`{"op":"hello","v":1,"id":"h"}`), `"id":"h"`, "welcome")
			if err == nil {
				err = p.call([]byte(`{"op":"subscribe","id":"s","sub":"s1","pattern":"`+BroadcastName+`","volatile":true}`), `"id":"s"`, "subscribed")
			}
			if err != nil {
				conn.Close()
				return nil, err
			}
			return ReadLoop(conn, got), nil
		},
	}
}

// protoRT is a client of the bridge's wire protocol (docs/protocol.md),
// written with raw frames as a browser's would be.
type protoRT struct {
	conn *websocket.Conn
	id   int
	data []byte
	buf  []byte
}

func (p *protoRT) RoundTrip(ctx context.Context) error {
	p.id++
	id := strconv.Itoa(p.id)
	p.buf = append(p.buf[:0], `{"op":"publish","id":"`...)
	p.buf = append(p.buf, id...)
	p.buf = append(p.buf, `","topic":"`+RoundTripName+`","data":`...)
	p.buf = append(p.buf, p.data...)
	p.buf = append(p.buf, '}')
	return p.call(p.buf, `"id":"`+id+`"`, "puback")
}

// call sends frame and reads until the answer carrying idField, which
// must be of op want.
func (p *protoRT) call(frame []byte, idField, want string) error {
	if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	for {
		_, msg, err := p.conn.ReadMessage()
		if err != nil {
			return err
		}
		if !bytes.Contains(msg, []byte(idField)) {
			continue
		}
		if !bytes.Contains(msg, []byte(`"op":"`+want+`"`)) {
			return fmt.Errorf("bench: wanted %s, got %s", want, msg)
		}
		return nil
	}
}

func (p *protoRT) Close() error { return p.conn.Close() }
