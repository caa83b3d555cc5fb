package bridge_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// rawConn is a WebSocket client that speaks frames by hand, for tests that
// send what the Go client would refuse to.
type rawConn struct {
	t   testing.TB
	ws  *websocket.Conn
	buf []wire.Frame
	err error // the read error that ended the connection
}

func (e *env) raw(h http.Header) *rawConn {
	e.t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(e.url, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		e.t.Fatalf("dial: %v (HTTP %d)", err, code)
	}
	r := &rawConn{t: e.t, ws: ws}
	e.t.Cleanup(func() { ws.Close() })
	return r
}

// rawHello dials and says hello.
func (e *env) rawHello() (*rawConn, wire.Frame) {
	e.t.Helper()
	r := e.raw(nil)
	r.send(`{"op":"hello","v":1,"id":"h"}`)
	return r, r.answer("h")
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		r.t.Fatalf("send %s: %v", s, err)
	}
}

// read reads the next message's frames into buf.
func (r *rawConn) read(d time.Duration) error {
	if r.err != nil {
		return r.err
	}
	r.ws.SetReadDeadline(time.Now().Add(d))
	_, msg, err := r.ws.ReadMessage()
	if err != nil {
		r.err = err
		return err
	}
	raws, err := wire.Split(msg)
	if err != nil {
		r.t.Fatalf("server sent %q: %v", msg, err)
	}
	for _, raw := range raws {
		f, err := wire.Parse(raw)
		if err != nil {
			r.t.Fatalf("server sent frame %s: %v", raw, err)
		}
		r.buf = append(r.buf, f)
	}
	return nil
}

// expect returns the first frame that matches, reading up to 10 seconds.
// Frames that do not match stay for later calls.
func (r *rawConn) expect(what string, match func(*wire.Frame) bool) wire.Frame {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for i := range r.buf {
			if match(&r.buf[i]) {
				f := r.buf[i]
				r.buf = append(r.buf[:i], r.buf[i+1:]...)
				return f
			}
		}
		if err := r.read(time.Until(deadline)); err != nil {
			r.t.Fatalf("waiting for %s: %v (unmatched frames: %+v)", what, err, r.buf)
		}
	}
}

// answer returns the frame answering id.
func (r *rawConn) answer(id string) wire.Frame {
	r.t.Helper()
	return r.expect("answer to "+id, func(f *wire.Frame) bool { return f.ID == id })
}

// op returns the next frame with op.
func (r *rawConn) op(op string) wire.Frame {
	r.t.Helper()
	return r.expect(op, func(f *wire.Frame) bool { return f.Op == op })
}

// closed reads until the server closes and returns the close code.
func (r *rawConn) closed() int {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		r.t.Fatalf("waiting for close: %v", err)
	}
}

// alive checks that the connection still answers (with a pong, or with
// rate_limited when the test spent the rate).
func (r *rawConn) alive() {
	r.t.Helper()
	r.send(`{"op":"ping","id":"alive"}`)
	if f := r.answer("alive"); f.Op != wire.OpPong && f.Code != wire.CodeRateLimited {
		r.t.Fatalf("got %+v, want pong", f)
	}
}
