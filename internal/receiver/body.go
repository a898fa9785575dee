package receiver

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// minBodyBuffer is the smallest body buffer, and all a request holds before its first byte
// arrives. Most deliveries (1–3 KB) fit in it.
const minBodyBuffer = 4 << 10

// bodies reads request bodies into pooled buffers and counts the bytes they hold against a cap.
//
// Buffers come in size classes that double from minBodyBuffer up to the largest accepted body,
// each class in its own pool, and a body moves to the next class only once its bytes filled the
// current one: a request holds at most about twice what it actually sent, whatever length it
// declared and whatever buffers earlier requests left in the pools.
type bodies struct {
	maxBody int64 // the largest accepted body
	maxHeld int64 // the cap on bytes held by all requests at once
	held    atomic.Int64
	classes []sync.Pool
}

// body is a pooled buffer of one class: cap(b) == minBodyBuffer<<class. Its len(b) bytes are
// counted in bodies.held until it is released.
type body struct {
	b     []byte
	class int
}

func newBodies(maxBody, maxHeld int64) *bodies {
	n := 1
	for int64(minBodyBuffer)<<(n-1) < maxBody {
		n++
	}
	return &bodies{maxBody: maxBody, maxHeld: maxHeld, classes: make([]sync.Pool, n)}
}

// readBody's failures.
var (
	errBodyTooLarge   = errors.New("the body is larger than the limit")
	errBodyUnreadable = errors.New("the body could not be read")
	errOverBudget     = errors.New("the bytes held for bodies in flight reached their cap")
)

// read reads r into a pooled buffer as its bytes arrive, each read bounded by the free room of the
// buffer's class. Every byte is counted as it arrives; when the count of all requests passes the
// cap, or the body passes the limit, or reading fails, the bytes are released and the error is one
// of errOverBudget, errBodyTooLarge or errBodyUnreadable. On success the caller gives the buffer
// back with release (or forget).
func (bs *bodies) read(r io.Reader) (*body, error) {
	buf := bs.get(0)
	for {
		room := min(int64(cap(buf.b)), bs.maxBody)
		if int64(len(buf.b)) == room {
			if room < bs.maxBody {
				buf = bs.grow(buf)
				continue
			}
			// At the limit: the body must end here.
			more, err := hasMore(r)
			switch {
			case err != nil:
				return nil, bs.fail(buf, errBodyUnreadable)
			case more:
				return nil, bs.fail(buf, errBodyTooLarge)
			}
			return buf, nil
		}
		n, err := r.Read(buf.b[len(buf.b):room])
		if n > 0 {
			buf.b = buf.b[:len(buf.b)+n]
			if bs.held.Add(int64(n)) > bs.maxHeld {
				return nil, bs.fail(buf, errOverBudget)
			}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, bs.fail(buf, errBodyUnreadable)
		}
	}
}

// release uncounts buf's bytes and puts it back for another request.
func (bs *bodies) release(buf *body) {
	bs.held.Add(-int64(len(buf.b)))
	bs.classes[buf.class].Put(buf)
}

// forget uncounts buf's bytes but leaves the buffer to the garbage collector: for a body that
// something else may still read (a publish that failed may still be retried by the NATS client).
func (bs *bodies) forget(buf *body) { bs.held.Add(-int64(len(buf.b))) }

// heldBytes is the number of body bytes held by requests in flight.
func (bs *bodies) heldBytes() int64 { return bs.held.Load() }

func (bs *bodies) fail(buf *body, err error) error {
	bs.release(buf)
	return err
}

func (bs *bodies) get(class int) *body {
	if b, ok := bs.classes[class].Get().(*body); ok {
		b.b = b.b[:0]
		return b
	}
	return &body{b: make([]byte, 0, minBodyBuffer<<class), class: class}
}

// grow moves buf's bytes into a buffer of the next class and puts buf back. The count is
// unchanged: the bytes are the same.
func (bs *bodies) grow(buf *body) *body {
	next := bs.get(buf.class + 1)
	next.b = append(next.b, buf.b...)
	bs.classes[buf.class].Put(buf)
	return next
}

// hasMore reports whether r has another byte to give.
func hasMore(r io.Reader) (bool, error) {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return true, nil
		case err == io.EOF:
			return false, nil
		case err != nil:
			return false, err
		}
	}
}
