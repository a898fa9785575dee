package idpclient

import (
	"context"
	"iter"
)

// PageFunc fetches the page at cursor and returns its items, the cursor of the next page and
// whether there is one. C is the provider's native position: an offset, an opaque cursor or the
// last id seen.
type PageFunc[T, C any] func(ctx context.Context, cursor C) (items []T, next C, more bool, err error)

// Paginate returns a lazy iterator over every item of a paginated list. It fetches a page only
// when the previous one is used up, so memory is bounded by one page whatever the list's length.
// It checks ctx before every page and every item, and stops at the first error, which it yields
// once with the zero T (the error of a cancelled ctx matches ctx.Err()). Breaking out of the
// range loop stops fetching.
func Paginate[T, C any](ctx context.Context, start C, fetch PageFunc[T, C]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cursor := start
		for {
			if err := ctx.Err(); err != nil {
				yield(zero, err)
				return
			}
			items, next, more, err := fetch(ctx, cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for i := range items {
				if err := ctx.Err(); err != nil {
					yield(zero, err)
					return
				}
				if !yield(items[i], nil) {
					return
				}
				// Let the page's items be collected as soon as they were handed out.
				items[i] = zero
			}
			if !more {
				return
			}
			cursor = next
		}
	}
}

// ClampPageSize returns want bounded to [1, limit], or limit when want is zero or negative: list
// iterators use the largest page the provider allows unless told otherwise.
func ClampPageSize(want, limit int) int {
	if want <= 0 || want > limit {
		return limit
	}
	return want
}

// FirstErr reads the first item of seq, fetching its first page only, and returns the error that
// came instead of it, if any: an empty list is no error.
func FirstErr[T any](seq iter.Seq2[T, error]) error {
	next, stop := iter.Pull2(seq)
	defer stop()
	_, err, _ := next()
	return err
}
