// Package etcdclient makes the etcd clients of the lab's etcd tier
// (remote/etcdlab, remote/etcdref) the same way: quiet, counting the
// requests they send, and with leases in whole seconds.
//
// The client is go.etcd.io/etcd/client/v3 at v3.5.x. The servers are
// Debian's etcd 3.4; etcd supports clusters that mix two adjacent minor
// versions during an upgrade, so 3.5 is the client line that was made to
// talk to 3.4 members. v3.6 and v3.7 also ran the lab's operations against
// 3.4 here, but nothing promises they keep doing so, and they pull the same
// weight (gRPC, zap, the Prometheus client).
package etcdclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Counter counts the request messages a client sends: each unary call
// (Range, Txn, Put, DeleteRange, LeaseGrant, LeaseRevoke, ...) and each
// message sent on a stream (a watch's create and cancel requests, a lease
// keep-alive). Calls the etcd client retries by itself (a read after an
// Unavailable error) count once per attempt. It is safe for concurrent use.
type Counter struct{ n atomic.Int64 }

// RoundTrips returns how many requests have been sent so far, failed ones
// included.
func (c *Counter) RoundTrips() int64 { return c.n.Load() }

func (c *Counter) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.n.Add(1)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *Counter) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return countingStream{s, c}, nil
}

type countingStream struct {
	grpc.ClientStream
	c *Counter
}

func (s countingStream) SendMsg(m any) error {
	s.c.n.Add(1)
	return s.ClientStream.SendMsg(m)
}

// ErrNoEndpoints is returned by New for an empty endpoint list or an empty
// endpoint.
var ErrNoEndpoints = errors.New("etcd: no endpoints (want \"127.0.0.1:2379\"-style addresses)")

// New returns an etcd client of endpoints that counts its requests on the
// returned Counter and logs nothing. It does not wait for a connection: a
// cluster that is down shows as errors from the first calls. gRPC pings
// the connection after 10 s idle (gRPC's floor) and drops it when a ping is
// not answered within 2 s, so that a stalled member is eventually left.
// extra dial options are appended (tests use them to inject faults).
func New(endpoints []string, extra ...grpc.DialOption) (*clientv3.Client, *Counter, error) {
	if len(endpoints) == 0 {
		return nil, nil, ErrNoEndpoints
	}
	for _, e := range endpoints {
		if e == "" {
			return nil, nil, fmt.Errorf("%w: %q", ErrNoEndpoints, endpoints)
		}
	}
	cnt := &Counter{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		DialOptions: append([]grpc.DialOption{
			grpc.WithChainUnaryInterceptor(cnt.unary),
			grpc.WithChainStreamInterceptor(cnt.stream),
		}, extra...),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: client of %v: %w", endpoints, err)
	}
	return cli, cnt, nil
}

// ErrBadTTL is returned (wrapped) for a lease TTL below one second.
var ErrBadTTL = errors.New("etcd leases last whole seconds: ttl must be at least 1s")

// LeaseSeconds converts ttl to the whole seconds an etcd lease is granted
// in, rounding a fraction up (a lease a little longer than asked delays a
// takeover after a crash; one shorter would cut a holder's time short).
// A ttl below one second is an error wrapping ErrBadTTL: rounding 300 ms up
// to a second would more than triple it. The server may grant more still:
// it raises a TTL below its minimum (1.5 election timeouts) to that.
func LeaseSeconds(ttl time.Duration) (int64, error) {
	if ttl < time.Second {
		return 0, fmt.Errorf("etcd: ttl %v: %w", ttl, ErrBadTTL)
	}
	return int64((ttl + time.Second - 1) / time.Second), nil
}
