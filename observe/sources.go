package observe

import (
	"strings"
	"time"

	"github.com/courierbus/courier/bridge"
	"github.com/courierbus/courier/bus"
)

// This file is where observe reads bus, bridge and persist. Everything the
// collector and the admin page know of them goes through the functions
// below, so that a counter those packages add later is wired in here, in
// one place.

// topicDropped returns how many of the topic's messages full queues
// dropped, and whether the bus reports it.
func topicDropped(t bus.TopicStats) (uint64, bool) { return t.Dropped, true }

// bridgeView is what observe reads of a bridge at one moment.
type bridgeView struct {
	bridge.Stats

	// What bridge.Stats does not report yet; the "have" flags say whether
	// the fields below are known.
	haveFrames         bool
	framesIn           uint64 // frames received from clients
	framesOut          uint64 // frames sent to clients
	errorFrames        map[string]uint64
	haveResumeDetail   bool
	resumesUnrecovered uint64 // resumed with some subscription not recovered
	resumesFailed      uint64 // a resume token that found no session
}

// readBridge takes a snapshot of br's counters.
func readBridge(br *bridge.Bridge) bridgeView {
	return bridgeView{Stats: br.Stats()}
}

// sessionView is one bridge session as the admin page shows it.
type sessionView struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Connected *bool      `json:"connected"` // nil: not known
	Rooms     []string   `json:"rooms"`
	Subs      *int       `json:"subscriptions"` // nil: not known
	Resumes   *int       `json:"resumes"`       // nil: not known
	Since     *time.Time `json:"since,omitempty"`
	Remote    string     `json:"remote,omitempty"`
}

// bridgeSessions lists br's sessions, at most limit of them, and whether
// the list is complete. The bridge cannot list its sessions yet, so this
// finds the ones that are in rooms: every member of a room that the bridge
// knows as a session. A Bridge.Sessions method would list them all, with
// their connection state, subscriptions and resumes.
func bridgeSessions(br *bridge.Bridge, b *bus.Bus, limit int) (list []sessionView, complete bool) {
	byID := make(map[string]*sessionView)
	for _, room := range b.Rooms() {
		for _, id := range b.RoomMembers(room) {
			sv := byID[id]
			if sv == nil {
				ident, ok := br.Identity(id)
				if !ok {
					continue
				}
				if len(byID) >= limit {
					continue
				}
				sv = &sessionView{ID: id, User: ident.ID}
				byID[id] = sv
			}
			sv.Rooms = append(sv.Rooms, room)
		}
	}
	list = make([]sessionView, 0, len(byID))
	for _, sv := range byID {
		list = append(list, *sv)
	}
	sortBy(list, func(s sessionView) string { return s.ID })
	return list, false
}

// disconnecter is a bridge that can close a session's connection, leaving
// the session to be resumed. *bridge.Bridge gets it with a method
// Disconnect(sessionID string) error.
type disconnecter interface {
	Disconnect(sessionID string) error
}

// canDisconnect reports whether br can disconnect a client.
func canDisconnect(br *bridge.Bridge) bool {
	_, ok := any(br).(disconnecter)
	return br != nil && ok
}

// disconnect closes the connection of session id.
func disconnect(br *bridge.Bridge, id string) error {
	d, ok := any(br).(disconnecter)
	if br == nil || !ok {
		return ErrUnsupported
	}
	return d.Disconnect(id)
}

// label folds the bus's own topic names: "$rooms.<room>" into "$rooms" and
// "$dead.<topic>" into "$dead" (any other "$x.<...>" into "$x"), and gives
// other names to f, when set.
func label(name string, f func(string) string) string {
	if strings.HasPrefix(name, "$") {
		tok, _, _ := strings.Cut(name, ".")
		return tok
	}
	if f != nil {
		return f(name)
	}
	return name
}
