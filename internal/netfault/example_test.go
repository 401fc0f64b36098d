package netfault_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/contend-lab/contend/internal/netfault"
)

// A client cut off from its server times out; after the heal, the request
// it sent during the cut arrives and is answered.
func ExampleProxy_Partition() {
	server, _ := net.Listen("tcp", "127.0.0.1:0") // an echo server
	defer server.Close()
	go func() {
		c, err := server.Accept()
		if err == nil {
			_, _ = io.Copy(c, c)
			_ = c.Close()
		}
	}()

	p, err := netfault.Listen(server.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	c, _ := net.Dial("tcp", p.Addr()) // the client dials the proxy
	defer c.Close()

	p.Partition()
	_, _ = c.Write([]byte("ping"))
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	fmt.Println("during the cut:", err.(net.Error).Timeout())

	p.Heal()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = io.ReadFull(c, buf)
	fmt.Printf("after the heal: %s %v\n", buf, err)
	// Output:
	// during the cut: true
	// after the heal: ping <nil>
}
