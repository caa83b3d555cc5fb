package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// markDelivered records seq as handed out; false when it had been before.
func (s *Subscription) markDelivered(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.durable.delivered {
		s.durable.delivered = seq
		return true
	}
	return false
}

// settled records that e needs no more deliveries and, for a durable
// consumer, saves the new position.
func (s *Subscription) settled(e *entry) {
	ds := s.durable
	if ds == nil {
		return
	}
	s.mu.Lock()
	if e.seq > ds.floor {
		ds.acked[e.seq] = struct{}{}
		for {
			if _, ok := ds.acked[ds.floor+1]; !ok {
				break
			}
			delete(ds.acked, ds.floor+1)
			ds.floor++
		}
	}
	s.mu.Unlock()
	s.saveDurable()
}

// saveDurable writes the durable consumer's position to the store. Saves
// land in order and never overlap, with no lock held across the store: a
// save asked for while another runs is left to that one, which saves
// again, with the newest position, when it is done.
func (s *Subscription) saveDurable() error {
	ds := s.durable
	s.mu.Lock()
	if s.saving {
		s.saveAgain = true
		s.mu.Unlock()
		return nil
	}
	s.saving = true
	var last error
	for {
		s.saveAgain = false
		st := ConsumerState{AckFloor: ds.floor, Delivered: ds.delivered}
		for q := range ds.acked {
			st.Acked = append(st.Acked, q)
		}
		s.mu.Unlock()
		slices.Sort(st.Acked)
		err := s.b.store.SaveConsumer(context.WithoutCancel(s.ctx), s.ts.name, s.cfg.durable, st)
		if err != nil {
			s.b.log.Error("bus: save durable position", "topic", s.ts.name, "durable", s.cfg.durable, "err", err)
			last = fmt.Errorf("bus: save durable %q on %q: %w", s.cfg.durable, s.ts.name, err)
		}
		s.mu.Lock()
		if !s.saveAgain {
			break
		}
	}
	s.saving = false
	s.mu.Unlock()
	return last
}

// DeadLetter is the value published to "$dead.<topic>" when a message has
// failed MaxDeliver attempts.
type DeadLetter struct {
	Topic    string            `json:"topic"`
	Seq      uint64            `json:"seq"`
	Epoch    uint64            `json:"epoch"`
	Time     time.Time         `json:"time"`
	Headers  map[string]string `json:"headers,omitempty"`
	Data     []byte            `json:"data"`
	Attempts int               `json:"attempts"`
	Error    string            `json:"error"`
	Pattern  string            `json:"pattern"`
	Durable  string            `json:"durable,omitempty"`
}

const deadPrefix = "$dead."

// DeadLetterTopic returns the name of the dead-letter topic of topic.
func DeadLetterTopic(topic string) string { return deadPrefix + topic }

func (s *Subscription) deadLetter(e *entry, attempts int, cause error) {
	ts := e.topic
	s.stats.deadLettered.Add(1)
	ts.stats.deadLettered.Add(1)
	errText := "unknown"
	if cause != nil {
		errText = cause.Error()
	}
	s.b.log.Warn("bus: dead letter", "topic", ts.name, "seq", e.seq, "attempts", attempts, "err", errText)
	if isDeadLetter(ts.name) {
		return
	}
	data, err := e.bytes()
	if err != nil {
		errText += "; encode: " + err.Error()
	}
	dl := DeadLetter{
		Topic: ts.name, Seq: e.seq, Epoch: e.epoch, Time: ts.b.wall(e.at), Headers: e.m().headers, Data: data,
		Attempts: attempts, Error: errText, Pattern: s.pattern, Durable: s.cfg.durable,
	}
	err = publishOne(context.WithoutCancel(s.ctx), s.b, DeadLetterTopic(ts.name), dl)
	if err != nil && !errors.Is(err, ErrClosed) {
		s.b.log.Error("bus: publish dead letter", "topic", ts.name, "seq", e.seq, "err", err)
	}
}
