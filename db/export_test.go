package db

import "time"

// PoolForTest returns the writers' pool.
func (w *Writers) PoolForTest() *Pool { return w.pool }

// SetNoticeWindowForTest changes how long after its release a connection's
// notifications count as the writers'.
func (w *Writers) SetNoticeWindowForTest(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noticeWindow = d
}
