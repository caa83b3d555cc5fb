package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/courierbus/courier/bus"
)

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"chat", true},
		{"chat.room42.messages", true},
		{"a-b_c.D9", true},
		{"$dead.chat", true},
		{"", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"a b", false},
		{"a.*", false},
		{"a.>", false},
		{"a.$b", false},
		{"$", false},
		{"ü", false},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := bus.ValidateTopic(tc.name)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateTopic(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, bus.ErrInvalidTopic) {
				t.Fatalf("error %v does not wrap ErrInvalidTopic", err)
			}
		})
	}
}

func TestValidatePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		ok      bool
	}{
		{"a.*", true},
		{"*.b", true},
		{">", true},
		{"*", true},
		{"a.>", true},
		{"a.*.c.>", true},
		{"a.>.c", false},
		{"a.b*", false},
		{"a.**", false},
		{"", false},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			if err := bus.ValidatePattern(tc.pattern); tc.ok != (err == nil) {
				t.Fatalf("ValidatePattern(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic string
		want           bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"*.b.*", "x.b.y", true},
		{">", "anything.at.all", true},
		{">", "$dead.x", false},
		{"*.x", "$dead.x", false},
		{"$dead.>", "$dead.chat.x", true},
		{"$dead.*", "$dead.chat", true},
	} {
		if got := bus.Match(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.topic, got, tc.want)
		}
	}
}

// TestWildcardDelivery checks that the trie delivers exactly to the
// patterns Match accepts.
func TestWildcardDelivery(t *testing.T) {
	b := newBus(t)
	patterns := []string{"a.b", "a.*", "a.>", "*.b", ">", "*.*.c", "a.b.>", "x.y"}
	topics := []string{"a.b", "a.c", "a.b.c", "q.b", "z"}
	type hit struct{ pattern, topic string }
	got := make(chan hit, 100)
	for _, p := range patterns {
		if _, err := b.Subscribe(p, func(_ context.Context, m bus.Message[any]) error {
			got <- hit{p, m.Topic()}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[hit]bool{}
	for _, tp := range topics {
		if _, err := b.PublishRaw(context.Background(), tp, []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		for _, p := range patterns {
			if bus.Match(p, tp) {
				want[hit{p, tp}] = true
			}
		}
	}
	for range len(want) {
		h := recv(t, got)
		if !want[h] {
			t.Fatalf("pattern %q received %q: not a match, or twice", h.pattern, h.topic)
		}
		delete(want, h)
	}
	none(t, got)
}

func FuzzValidatePattern(f *testing.F) {
	for _, s := range []string{"a.b", "a.*", ">", "$dead.>", "a..b", "*.*.>", ""} {
		f.Add(s, "a.b.c")
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		perr := bus.ValidatePattern(pattern)
		terr := bus.ValidateTopic(topic)
		if terr == nil && bus.ValidatePattern(topic) != nil {
			t.Fatalf("valid topic %q is not a valid pattern", topic)
		}
		if perr == nil && terr == nil {
			if pattern == topic && !bus.Match(pattern, topic) {
				t.Fatalf("%q does not match itself", topic)
			}
			bus.Match(pattern, topic)
		}
	})
}
