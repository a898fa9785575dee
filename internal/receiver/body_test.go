package receiver

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// Bodies of every size up to the limit arrive whole, however the reads are cut; one byte more is
// too large; and every byte counted is uncounted again.
func TestBodiesReadUpToTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 100_000
	bs := newBodies(limit, 1<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, minBodyBuffer - 1, minBodyBuffer, minBodyBuffer + 1, 3 * minBodyBuffer, 65536, limit - 1, limit, limit + 1, 2 * limit} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(rnd.Uint32())
		}
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(want),
			"one byte": iotest.OneByteReader(bytes.NewReader(want)),
			"halves":   iotest.HalfReader(bytes.NewReader(want)),
			"eof late": iotest.DataErrReader(bytes.NewReader(want)),
		} {
			buf, err := bs.read(r)
			switch {
			case n > limit:
				if !errors.Is(err, errBodyTooLarge) {
					t.Errorf("%d bytes, %s: err %v, want too large", n, name, err)
				}
			case err != nil:
				t.Errorf("%d bytes, %s: %v", n, name, err)
			case !bytes.Equal(buf.b, want):
				t.Errorf("%d bytes, %s: read %d bytes, not the same", n, name, len(buf.b))
			case cap(buf.b) > max(2*n, minBodyBuffer):
				t.Errorf("%d bytes, %s: buffer of %d bytes", n, name, cap(buf.b))
			default:
				bs.release(buf)
			}
			if held := bs.heldBytes(); held != 0 {
				t.Fatalf("%d bytes, %s: %d bytes still counted", n, name, held)
			}
		}
	}
	// A failing read releases what was read.
	_, err := bs.read(io.MultiReader(bytes.NewReader(make([]byte, 10_000)), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if !errors.Is(err, errBodyUnreadable) || bs.heldBytes() != 0 {
		t.Fatalf("err %v, %d bytes held", err, bs.heldBytes())
	}
}
