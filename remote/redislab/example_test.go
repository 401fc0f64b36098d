package redislab_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/remote/redislab"
)

// store is a resource that keeps the highest fencing token it has seen
// and refuses writes with a lower one: what a lock's fencing token is for.
type store struct {
	mu      sync.Mutex
	highest uint64
}

func (s *store) WriteIfNewer(token uint64, _ string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return false
	}
	s.highest = token
	return true
}

// A Redis lock with fencing: a holder that stalls past its lease is
// refused by the resource, because the next holder's token is larger.
func ExampleLock() {
	srv, err := redisserver.Start(context.Background(), redisserver.Options{}) // a throw-away server for the example
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	// Your own client, with its options; context deadlines must be honoured.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	l, err := redislab.NewLock(rdb, "orders", 200*time.Millisecond)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	var db store

	stale, _ := l.Acquire(ctx)
	time.Sleep(300 * time.Millisecond) // the holder stalls past its lease
	next, _ := l.Acquire(ctx)
	fmt.Println("new holder writes:", db.WriteIfNewer(next.Token(), "new"))
	fmt.Println("stale holder writes:", db.WriteIfNewer(stale.Token(), "old"))
	fmt.Println("stale release:", stale.Release(ctx) != nil)
	_ = next.Release(ctx)
	// Output:
	// new holder writes: true
	// stale holder writes: false
	// stale release: true
}
