package store

// BatchOrder exposes batchOrder to the external tests.
var BatchOrder = batchOrder
