package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bench/internal/bench"
)

// WSServers returns every WebSocket server a child process may run.
func WSServers() []bench.WSServer {
	return []bench.WSServer{bench.MelodyServer(), bench.CourierServer(), CentrifugeServer()}
}

// WSImpls returns every WebSocket implementation, baseline first.
func WSImpls() []bench.WSImpl {
	return []bench.WSImpl{bench.Melody(), bench.CourierWS(), bench.CourierRaw(), Centrifuge()}
}

// CentrifugeServer is Centrifuge embedded with its in-memory broker:
// anonymous connections, every subscribe and client publish allowed, the
// broadcast a Node.Publish of the event's JSON to the channel.
func CentrifugeServer() bench.WSServer {
	return bench.WSServer{Name: "centrifuge", Start: func(mux *http.ServeMux) (bench.WSRuntime, error) {
		node, err := centrifuge.New(centrifuge.Config{})
		if err != nil {
			return nil, err
		}
		node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
			return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil
		})
		node.OnConnect(func(c *centrifuge.Client) {
			c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
				cb(centrifuge.SubscribeReply{}, nil)
			})
			c.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
				cb(centrifuge.PublishReply{}, nil)
			})
		})
		if err := node.Run(); err != nil {
			return nil, err
		}
		mux.Handle(bench.WSPath, centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
			CheckOrigin: func(*http.Request) bool { return true },
		}))
		return centrifugeRuntime{node}, nil
	}}
}

type centrifugeRuntime struct{ n *centrifuge.Node }

func (r centrifugeRuntime) Broadcast(ev bench.WSEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = r.n.Publish(bench.BroadcastName, b)
	return err
}

func (r centrifugeRuntime) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.n.Shutdown(ctx)
}

// Centrifuge is Centrifuge with clients speaking its JSON protocol over
// raw WebSocket, as centrifuge-js does in a browser: connect, subscribe,
// read pushes (answering the server's pings); round trips are publishes
// with an id, answered by the server's publish reply.
func Centrifuge() bench.WSImpl {
	return bench.WSImpl{
		Name: "centrifuge", Server: "centrifuge",
		Note: "centrifuge embedded (memory broker), Node.Publish of the JSON bytes; clients: its JSON protocol over gorilla/websocket",
		Dial: func(ctx context.Context, addr string, got func([]byte)) (io.Closer, error) {
			conn, err := bench.DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			c := &centClient{conn: conn}
			if err := c.call(`{"id":1,"connect":{}}`, 1); err == nil {
				err = c.call(`{"id":2,"subscribe":{"channel":"`+bench.BroadcastName+`"}}`, 2)
			}
			if err != nil {
				conn.Close()
				return nil, err
			}
			c.id = 2
			c.done = make(chan struct{})
			go c.read(got)
			return c, nil
		},
		RoundTripper: func(ctx context.Context, addr string) (bench.RoundTripper, error) {
			conn, err := bench.DialWS(ctx, addr)
			if err != nil {
				return nil, err
			}
			c := &centClient{conn: conn, id: 1}
			if err := c.call(`{"id":1,"connect":{}}`, 1); err != nil {
				conn.Close()
				return nil, err
			}
			c.data, _ = json.Marshal(bench.WSEvent{Text: bench.WSText})
			return c, nil
		},
	}
}

// centClient is a client of Centrifuge's JSON protocol: commands with
// ids, replies with the same id, pushes without; several may share a
// WebSocket message, one per line. An empty object is a ping, answered
// with one.
type centClient struct {
	conn *websocket.Conn
	id   int
	data []byte
	buf  []byte
	done chan struct{}
	once sync.Once
}

// call sends cmd and reads until the reply with id.
func (c *centClient) call(cmd string, id int) error {
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return err
	}
	want := []byte(`"id":` + strconv.Itoa(id) + `,`)
	want2 := []byte(`"id":` + strconv.Itoa(id) + `}`)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return err
		}
		for line := range bytes.Lines(msg) {
			if bytes.Contains(line, want) || bytes.Contains(line, want2) {
				if bytes.Contains(line, []byte(`"error":`)) {
					return fmt.Errorf("peers: centrifuge: %s", line)
				}
				return nil
			}
		}
	}
}

func (c *centClient) RoundTrip(ctx context.Context) error {
	c.id++
	c.buf = append(c.buf[:0], `{"id":`...)
	c.buf = strconv.AppendInt(c.buf, int64(c.id), 10)
	c.buf = append(c.buf, `,"publish":{"channel":"`+bench.RoundTripName+`","data":`...)
	c.buf = append(c.buf, c.data...)
	c.buf = append(c.buf, `}}`...)
	return c.call(string(c.buf), c.id)
}

func (c *centClient) read(got func([]byte)) {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if bytes.Equal(bytes.TrimSpace(msg), []byte("{}")) {
			c.conn.WriteMessage(websocket.TextMessage, []byte("{}"))
			continue
		}
		got(msg)
	}
}

func (c *centClient) Close() error {
	c.once.Do(func() {
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.conn.Close()
		if c.done != nil {
			<-c.done
		}
	})
	return nil
}
