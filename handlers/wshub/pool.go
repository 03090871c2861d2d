package wshub

import "sync"

// poolAdapter is a websocket.BufferPool on sync.Pool. Safe for concurrent
// use.
type poolAdapter struct{ p sync.Pool }

func (a *poolAdapter) Get() any  { return a.p.Get() }
func (a *poolAdapter) Put(v any) { a.p.Put(v) }
