package bridge

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/courierbus/courier/bridge/internal/wire"
)

// This file is what a host sees of the bridge, and does to its sessions,
// from outside the protocol: Stats, Sessions, Disconnect. Counters are
// atomics bumped where things happen; per-code counters sit in an array
// indexed by the code's place in the protocol's list.

type counters struct {
	accepted, refused, slow, badFrames, sessionsEnded, resumed atomic.Uint64
	framesIn, framesOut, resumesUnrecovered, resumesFailed     atomic.Uint64
	errorFrames                                                [wire.NumCodes]atomic.Uint64
}

// errorFrame adds delta (1, or ^uint64(0) to take one back) to the count
// of error frames sent with code.
func (k *counters) errorFrame(code string, delta uint64) {
	i := wire.CodeIndex(code)
	if i < 0 {
		i = wire.CodeIndex(wire.CodeInternal)
	}
	k.errorFrames[i].Add(delta)
}

// Stats is a snapshot of a bridge's counters. Counters (the uint64 fields)
// only grow for the life of the bridge.
type Stats struct {
	Connections     int    // open WebSocket connections
	Sessions        int    // sessions, connected or waiting for resume
	Routes          int    // bus subscriptions the bridge holds, one per distinct pattern
	Accepted        uint64 // connections upgraded
	Refused         uint64 // requests refused before the upgrade (origin, auth, closed)
	Resumed         uint64 // sessions resumed
	SlowDisconnects uint64 // connections closed because they did not read fast enough
	BadDisconnects  uint64 // connections closed for too many bad frames
	SessionsEnded   uint64 // sessions ended: bye, resume window passed, or Close

	// FramesIn counts the frames received from clients; a WebSocket
	// message holding an array counts each of its frames.
	FramesIn uint64
	// FramesOut counts the frames handed to the connections' writers (a
	// batch counts each of its frames). Frames dropped because their
	// connection was closing first are not counted.
	FramesOut uint64
	// ErrorFrames counts the error frames sent, by protocol error code
	// (docs/protocol.md, section 3). It has an entry for every code, zero
	// or not.
	ErrorFrames map[string]uint64
	// ResumesUnrecovered counts the resumes (included in Resumed) in which
	// some subscription came back with recovered: false, because history
	// no longer held everything it was owed.
	ResumesUnrecovered uint64
	// ResumesFailed counts the hellos with a resume token that restored no
	// session (unknown, expired, forged or another identity's): the client
	// got a new session.
	ResumesFailed uint64
}

// Stats returns a snapshot of the bridge's counters. It is safe for
// concurrent use and cheap: the counters are atomics, read here only.
func (b *Bridge) Stats() Stats {
	b.lifeMu.Lock()
	nc := len(b.conns)
	b.lifeMu.Unlock()
	b.mu.RLock()
	ns := len(b.sessions)
	b.mu.RUnlock()
	b.routeMu.Lock()
	nr := len(b.routes)
	b.routeMu.Unlock()
	codes := wire.Codes()
	errs := make(map[string]uint64, len(codes))
	for i, code := range codes {
		errs[code] = b.stats.errorFrames[i].Load()
	}
	return Stats{
		Connections: nc, Sessions: ns, Routes: nr,
		Accepted: b.stats.accepted.Load(), Refused: b.stats.refused.Load(), Resumed: b.stats.resumed.Load(),
		SlowDisconnects: b.stats.slow.Load(), BadDisconnects: b.stats.badFrames.Load(),
		SessionsEnded: b.stats.sessionsEnded.Load(),
		FramesIn:      b.stats.framesIn.Load(), FramesOut: b.stats.framesOut.Load(), ErrorFrames: errs,
		ResumesUnrecovered: b.stats.resumesUnrecovered.Load(), ResumesFailed: b.stats.resumesFailed.Load(),
	}
}

// SessionInfo describes one session of a bridge (see [Bridge.Sessions]).
type SessionInfo struct {
	// ID is the session id: the client's member id in rooms and presence,
	// and what Request and Disconnect take.
	ID string
	// User is the identity the host authenticated ([Identity].ID); empty
	// for anonymous clients.
	User string
	// Connected is true while a connection is attached, false while the
	// session waits for its client to resume.
	Connected bool
	// Since is when the session entered its current state: when its
	// current connection said hello (Connected), or when its last
	// connection ended (not Connected). It is read from the bridge's
	// clock, which is some milliseconds coarse.
	Since time.Time
	// Subscriptions is how many subscriptions the session has.
	Subscriptions int
	// Rooms are the rooms the session's member is in, sorted, as the bus
	// names them (with the bridge's [Namespace] prefix, if any).
	Rooms []string
	// Resumes counts the times a client resumed the session.
	Resumes int
	// Remote is the network address of the current connection's client,
	// as http.Request.RemoteAddr gave it; empty when not Connected.
	Remote string
}

// Sessions returns every live session, connected or waiting for resume,
// sorted by ID. It is safe for concurrent use; it copies the sessions'
// state, one session at a time, so it is a snapshot of each session but
// not of all of them at one instant.
func (b *Bridge) Sessions() []SessionInfo {
	b.mu.RLock()
	all := make([]*session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.RUnlock()
	out := make([]SessionInfo, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			continue
		}
		si := SessionInfo{
			ID: s.id, User: s.ident.ID, Connected: s.c != nil, Since: b.clock0.Add(time.Duration(s.since)),
			Subscriptions: len(s.subs), Resumes: s.resumes,
		}
		if s.c != nil {
			si.Remote = s.c.remote
		}
		s.mu.Unlock()
		si.Rooms = s.member.Rooms()
		out = append(out, si)
	}
	slices.SortFunc(out, func(x, y SessionInfo) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Disconnect closes the connection of session sessionID with close code
// 4009 ("disconnected"), after the frames already queued for it, and
// returns without waiting for the close. The session stays for its
// [ResumeWindow] (with a window of 0 it ends at once): the client
// reconnects and resumes it, and gets again whatever it had not
// acknowledged. Disconnect returns [ErrNoSession] when no live session
// has the id, and [ErrNotConnected] while the session has no connection.
// It is safe for concurrent use.
func (b *Bridge) Disconnect(sessionID string) error {
	s := b.session(sessionID)
	if s == nil {
		return fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	}
	s.mu.Lock()
	c, ended := s.c, s.ended
	s.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("%w: %q", ErrNoSession, sessionID)
	case c == nil:
		return fmt.Errorf("%w: %q", ErrNotConnected, sessionID)
	}
	b.log.Info("bridge: disconnecting a client", "session", sessionID)
	c.closeAfter(wire.CloseDisconnected, "disconnected")
	return nil
}
