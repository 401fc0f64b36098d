package redisx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

// reply is an error reply as go-redis returns it (a redis.Error).
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

func TestTransient(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		err       error
		transient bool
	}{
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{reply("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("CLUSTERDOWN The cluster is down"), true},
		{reply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), true},
		{reply("NOREPLICAS Not enough good replicas to write."), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("ERR max number of clients reached"), true},
		{reply("WRONGPASS invalid username-password pair or user is disabled."), false},
		{reply("NOAUTH Authentication required."), false},
		{reply("NOPERM this user has no permissions to run the 'evalsha' command"), false},
		{reply("WRONGTYPE Operation against a key holding the wrong kind of value script: 1234"), false},
		{reply("OOM command not allowed when used memory > 'maxmemory'."), false},
		{reply("ERR DB index is out of range"), false},
		{reply("CROSSSLOT Keys in request don't hash to the same slot"), false},
		{fmt.Errorf("wrapped: %w", reply("LOADING Redis is loading")), true},
		{dial, true},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{redis.ErrPoolTimeout, true},
		{redis.ErrClosed, false},
		{&net.OpError{Op: "remote error", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, false},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, false},
		{x509.HostnameError{Host: "redis.example"}, false},
		{errors.New("acquire script returned [1 2]"), false},
		{nil, false},
	} {
		assert.Equal(t, tc.transient, Transient(tc.err), "%v", tc.err)
	}
}

func TestAttemptsSayWhy(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	for _, tc := range []struct {
		name string
		run  func(a *Attempts)
		want string
	}{
		{"nothing sent", func(*Attempts) {}, "op: context canceled"},
		{"held", func(a *Attempts) { a.Held() }, "op: context canceled (held by another holder)"},
		{"no reply", func(a *Attempts) { a.Failed(ended, context.Canceled) }, "op: context canceled (no reply from Redis)"},
		{"the network error, not the deadline the last attempt died of", func(a *Attempts) {
			a.Failed(ended, refused)
			a.Failed(ended, fmt.Errorf("redis: %w", context.Canceled))
		}, "op: context canceled (last error: " + refused.Error() + ")"},
		{"the socket's timeout at the deadline is no reply", func(a *Attempts) {
			a.Failed(ended, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
		}, "op: context canceled (no reply from Redis)"},
		{"the socket's timeout just before the context's timer fired", func(a *Attempts) {
			a.Failed(lateTimer{context.Background(), time.Now().Add(-time.Millisecond)},
				&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
		}, "op: context canceled (no reply from Redis)"},
		{"held after an error", func(a *Attempts) { a.Failed(ended, refused); a.Held() }, "op: context canceled (held by another holder)"},
		{"an attempt's own timeout is an error", func(a *Attempts) { a.Failed(context.Background(), context.DeadlineExceeded) },
			"op: context canceled (last error: context deadline exceeded)"},
	} {
		var a Attempts
		tc.run(&a)
		err := a.Err("op", ended)
		assert.EqualError(t, err, tc.want, tc.name)
		assert.ErrorIs(t, err, context.Canceled, tc.name)
	}
}

func TestHashTagAndCheckKey(t *testing.T) {
	for key, tag := range map[string]string{"{a}": "a", "x{a}y": "a", "{}a": "", "a": "", "{a": "", "a}{b}": "b", "{a}{b}": "a"} {
		assert.Equal(t, tag, HashTag(key), key)
	}
	assert.NoError(t, CheckKey(Settings{}, "Lock", "k"))
	assert.NoError(t, CheckKey(Settings{Sharded: true}, "Lock", "{k}"))
	assert.Error(t, CheckKey(Settings{Sharded: true}, "Lock", "k"))
}

func TestClientSettings(t *testing.T) {
	var nilClient *redis.Client
	for _, c := range []redis.UniversalClient{nil, nilClient} {
		_, err := ClientSettings(c)
		assert.ErrorIs(t, err, ErrNilClient)
	}
	plain := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer plain.Close()
	_, err := CheckClient(plain)
	assert.ErrorIs(t, err, ErrClientConfig)
	type wrapped struct{ *redis.Client }
	_, err = CheckClient(wrapped{NewClient("127.0.0.1:1")})
	assert.ErrorIs(t, err, ErrClientConfig, "a client type whose options cannot be read")
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer cc.Close()
	s, err := CheckClient(cc)
	assert.NoError(t, err)
	assert.True(t, s.Sharded)
}

// lateTimer is a context whose deadline has passed but whose timer has not
// yet marked it done.
type lateTimer struct {
	context.Context
	deadline time.Time
}

func (c lateTimer) Deadline() (time.Time, bool) { return c.deadline, true }
