package fakeidp

// table is an ordered in-memory collection keyed by id: rows keep creation order (the order the
// fakes page in), index finds a row by id.
type table[T any] struct {
	rows  []*T
	index map[string]int
	id    func(*T) string
}

func newTable[T any](id func(*T) string, capacity int) *table[T] {
	return &table[T]{rows: make([]*T, 0, capacity), index: make(map[string]int, capacity), id: id}
}

func (t *table[T]) add(v *T) {
	t.index[t.id(v)] = len(t.rows)
	t.rows = append(t.rows, v)
}

func (t *table[T]) get(id string) (*T, bool) {
	i, ok := t.index[id]
	if !ok {
		return nil, false
	}
	return t.rows[i], true
}

func (t *table[T]) remove(id string) (*T, bool) {
	i, ok := t.index[id]
	if !ok {
		return nil, false
	}
	v := t.rows[i]
	delete(t.index, id)
	copy(t.rows[i:], t.rows[i+1:])
	t.rows[len(t.rows)-1] = nil
	t.rows = t.rows[:len(t.rows)-1]
	for j := i; j < len(t.rows); j++ {
		t.index[t.id(t.rows[j])] = j
	}
	return v, true
}

func (t *table[T]) len() int { return len(t.rows) }

// list returns the rows that match keep (all when keep is nil), in order.
func (t *table[T]) list(keep func(*T) bool) []*T {
	if keep == nil {
		return t.rows
	}
	var out []*T
	for _, r := range t.rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// window returns rows[offset:offset+limit], clipped.
func window[T any](rows []*T, offset, limit int) []*T {
	if offset >= len(rows) {
		return nil
	}
	end := min(offset+limit, len(rows))
	return rows[offset:end]
}
