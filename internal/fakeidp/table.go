package fakeidp

// Table is an ordered in-memory collection keyed by id: Rows keep creation order (the order the
// fakes page in), an index finds a row by id. It is not safe for concurrent use; fakes lock.
type Table[T any] struct {
	// Rows are the rows in creation order. Read only; change them through the methods.
	Rows  []*T
	index map[string]int
	id    func(*T) string
}

// NewTable returns an empty table whose rows are identified by id.
func NewTable[T any](id func(*T) string, capacity int) *Table[T] {
	return &Table[T]{Rows: make([]*T, 0, capacity), index: make(map[string]int, capacity), id: id}
}

// Add appends a row.
func (t *Table[T]) Add(v *T) {
	t.index[t.id(v)] = len(t.Rows)
	t.Rows = append(t.Rows, v)
}

// Get finds a row by id.
func (t *Table[T]) Get(id string) (*T, bool) {
	i, ok := t.index[id]
	if !ok {
		return nil, false
	}
	return t.Rows[i], true
}

// Remove deletes a row by id.
func (t *Table[T]) Remove(id string) (*T, bool) {
	i, ok := t.index[id]
	if !ok {
		return nil, false
	}
	v := t.Rows[i]
	delete(t.index, id)
	copy(t.Rows[i:], t.Rows[i+1:])
	t.Rows[len(t.Rows)-1] = nil
	t.Rows = t.Rows[:len(t.Rows)-1]
	for j := i; j < len(t.Rows); j++ {
		t.index[t.id(t.Rows[j])] = j
	}
	return v, true
}

// Len is the number of rows.
func (t *Table[T]) Len() int { return len(t.Rows) }

// List returns the rows that match keep (all when keep is nil), in order.
func (t *Table[T]) List(keep func(*T) bool) []*T {
	if keep == nil {
		return t.Rows
	}
	var out []*T
	for _, r := range t.Rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// Window returns rows[offset:offset+limit], clipped.
func Window[T any](rows []*T, offset, limit int) []*T {
	if offset >= len(rows) {
		return nil
	}
	end := min(offset+limit, len(rows))
	return rows[offset:end]
}

// Pos returns the position of the row with id.
func (t *Table[T]) Pos(id string) (int, bool) {
	i, ok := t.index[id]
	return i, ok
}

// Ordered returns rows in the order order_by asks for: creation order for "+created_at" or
// "created_at", else newest first (Clerk's default, and Zitadel's descending lists).
func Ordered[T any](rows []*T, orderBy string) []*T {
	if orderBy == "+created_at" || orderBy == "created_at" {
		return rows
	}
	rev := make([]*T, len(rows))
	for i, r := range rows {
		rev[len(rows)-1-i] = r
	}
	return rev
}
