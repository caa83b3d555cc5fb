// Package chatapp is the chat of the examples, on a bus it is given: rooms
// with live presence, the last messages of a room on joining it, and one
// page (embedded, no build step: index.html and chat.js) that talks to the
// server through the browser client courier.js. chat.js is JavaScript
// checked by tsc through JSDoc (// @ts-check) against the declarations the
// bridge generates from the Go types of types.go; bus/ holds a copy of
// them, written by cmd/courier-ts. examples/chat runs it on one bus kept in
// Badger; examples/cluster runs it on three buses sharing their topics and
// rooms through NATS, where the page fails over from node to node.
//
// Users sign in with a name and a password (POST /signin; the first
// sign-in with a name sets its password, and "admin" is no page's); the
// server answers with a session cookie it signs, which the bridge's
// Authenticate hook reads from the WebSocket's upgrade request (auth.go).
//
// The bridge is mounted at /bus/ and exposes only the chat: topics
// "chat.<room>" (subscribe, publish; only the room's members), the
// endpoints "rooms.list" and "rooms.position" (request) and every one-token
// room (join, presence). The topic "admin.announce" is not exposed: the
// page's "/announce" command publishes there to show the "forbidden" error.
//
//	s, err := chatapp.New(b, chatapp.CloseAfter(b))
//	...
//	err = chatapp.Serve(ctx, ln, s, 0) // until ctx ends; then closes s, and b
package chatapp
