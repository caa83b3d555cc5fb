// Package bridge connects WebSocket clients — browsers with the module it
// serves at "<mount>client.js", Go programs with package
// [github.com/courierbus/courier/bridge/client] — to a [bus.Bus], over the
// wire protocol of docs/protocol.md. It is an [net/http.Handler] built on
// melody: the host mounts it on its own mux.
//
//	b, _ := bus.New()
//	br, _ := bridge.New(b,
//		bridge.Authenticate(func(r *http.Request) (bridge.Identity, error) {
//			return bridge.Identity{ID: userFromCookie(r)}, nil
//		}),
//		bridge.Expose("chat.>", bridge.Subscribe, bridge.Publish),
//		bridge.ExposeRooms("room.>", bridge.Join, bridge.Presence),
//	)
//	mux := http.NewServeMux()
//	mux.Handle("/bus/", br) // WebSocket at /bus/, browser client at /bus/client.js
//	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
//	go srv.ListenAndServe()
//	...
//	br.Shutdown(ctx) // before srv.Shutdown and b.Close
//
// # Typed topics in the browser
//
// The bridge serves TypeScript declarations beside the client:
// "<mount>client.d.ts", the client's, and "<mount>topics.d.ts", which maps
// every exposed topic and pattern to its payload type, per action, from the
// Go types of the topics bound with [bus.NewTopic], the endpoints bound
// with [bus.NewEndpoint] and the patterns exposed with [ExposeTyped] (see
// [Bridge.TypeScript] and package [github.com/courierbus/courier/bridge/tsgen]).
// A page typed with them (connect<Topics>(url)) does not compile when it
// publishes a wrong payload or to a topic it may only read. The command
// courier-ts writes both into a front-end tree; docs/typescript.md has the
// whole round trip.
//
// # Security
//
// Before the upgrade, the request's Origin must be the same as its Host
// (or one of [AllowOrigins]) and the [Authenticate] hook must accept it;
// refusals are HTTP 403 and 401, never an upgraded socket. [HelloAuth]
// can check credentials sent in the hello frame instead. Topics and rooms
// are closed to clients unless [Expose] and [ExposeRooms] open them, and
// every action passes the [Authorize] hook, which learns the session that
// asks from [SessionID]. Every publish of a client carries who published it
// in headers no client can forge ([HeaderUser], [HeaderSession]). Resume
// tokens are HMACs under a random per-bridge key, bound to the identity.
//
// # Limits
//
// Every connection is bounded: frame and message size, frames per second,
// refused frames before it is closed, subscriptions, bytes waiting to be
// written (a client that does not read is disconnected as slow and
// resumes without loss), and the time to say hello. See the options for
// the defaults; bad input is answered with an error frame and never panics
// the process.
//
// # Sessions and delivery
//
// A session outlives its connection for the [ResumeWindow]. A client that
// comes back with its resume token keeps its session id, rooms and
// subscriptions; it gets again what it had not acknowledged and what was
// published meanwhile, in order, from the topics' history — or an explicit
// recovered: false when history no longer covers it. Meanwhile its member
// stays in its rooms, and those watching their presence see it away from
// the moment its connection drops until it resumes. When the window
// passes, the session's member leaves its rooms.
//
// The host sees the sessions with [Bridge.Sessions] and the bridge's
// counters with [Bridge.Stats] (package observe exports them as metrics and
// shows them on an admin page); [Bridge.Disconnect] closes a client's
// connection with close code 4009, and the client resumes its session.
//
// The bridge holds one bus subscription per distinct pattern its clients
// use and fans each message out itself, encoding it once for every
// connection; frames queued for a connection are written together as one
// WebSocket message. These subscriptions are [bus.Unfiltered]: messages
// addressed with [bus.To], [bus.Except] or [bus.ExceptMember], published by
// a client or in-process, reach the bridge like any other, and it hands
// each to the sessions it reaches ([bus.Message.Reaches]).
//
// # Server timeouts
//
// The bridge is a handler: timeouts of the connection before the upgrade
// are the host's. Set ReadHeaderTimeout (and ReadTimeout, WriteTimeout,
// IdleTimeout as the host's other handlers need) on the [http.Server]; the
// upgrade clears the deadlines, and from then on the bridge bounds each
// write ([WriteTimeout]) and closes connections that stop answering pings
// ([Heartbeat]).
//
// # melody
//
// melody's defaults are unsafe for this use, and the bridge sets each one:
// its 512-byte read limit ([MessageLimit]), any origin accepted (same origin
// by default), a full session buffer that drops messages silently (the
// bridge keeps one batch in melody's buffer and disconnects rather than
// drop), callbacks that run under melody's lock (the bridge's never call
// back into melody), and a Close that does not wait (the bridge's Close and
// Shutdown return after every connection and goroutine has ended). melody
// runs a connection's read loop in the HTTP handler; the bridge runs it on
// a goroutine of its own and returns from the handler once the connection
// is hijacked, so that net/http's per-connection buffers are freed.
package bridge
