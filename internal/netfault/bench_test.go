package netfault

import (
	"io"
	"testing"

	"github.com/contend-lab/contend/internal/redisserver"
	"github.com/contend-lab/contend/internal/servertest"
)

// BenchmarkRoundTrip measures what a proxy adds to one request's round
// trip on loopback: path=direct is the client talking to the server,
// path=proxy the same client through a Proxy with no fault set. Compare
// the two within one run (benchstat).
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("server=echo", func(b *testing.B) {
		srv := startEcho(b)
		paths(b, srv.Addr(), func(b *testing.B, addr string) {
			c := dial(b, addr)
			msg := []byte("0123456789abcdef")
			buf := make([]byte, len(msg))
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("server=redis", func(b *testing.B) {
		cl := servertest.Start(b, redisserver.Backend, redisserver.Single)
		paths(b, cl.Endpoints()[0], func(b *testing.B, addr string) {
			c := dial(b, addr)
			ping := []byte("*1\r\n$4\r\nPING\r\n")
			pong := make([]byte, len("+PONG\r\n"))
			for b.Loop() {
				if _, err := c.Write(ping); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, pong); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// paths runs bench on target directly and through a proxy.
func paths(b *testing.B, target string, bench func(b *testing.B, addr string)) {
	b.Run("path=direct", func(b *testing.B) { bench(b, target) })
	b.Run("path=proxy", func(b *testing.B) { bench(b, listen(b, target).Addr()) })
}
