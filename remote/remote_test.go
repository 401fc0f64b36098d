package remote_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/contend-lab/contend/remote"
)

// fakeNode is a remote.Node that only has an address.
type fakeNode struct{ addr string }

func (n fakeNode) Addr() string                { return n.addr }
func (fakeNode) Pause() error                  { return nil }
func (fakeNode) Resume() error                 { return nil }
func (fakeNode) Kill() error                   { return nil }
func (fakeNode) Restart(context.Context) error { return nil }
func (fakeNode) Serving(context.Context) error { return nil }

func TestNodesAndEndpointsOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []fakeNode
		want  []string
	}{
		{"none", nil, []string{}},
		{"in order", []fakeNode{{"127.0.0.1:3"}, {"127.0.0.1:1"}, {"127.0.0.1:2"}}, []string{"127.0.0.1:3", "127.0.0.1:1", "127.0.0.1:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, remote.EndpointsOf(tc.nodes))
			nodes := remote.NodesOf(tc.nodes)
			if assert.Len(t, nodes, len(tc.nodes)) {
				for i, n := range nodes {
					assert.Equal(t, tc.nodes[i].addr, n.Addr())
				}
			}
		})
	}
}

// TestAskEach: the answers and errors come back in server order, and the
// questions are asked at once (each waits until all have been asked).
func TestAskEach(t *testing.T) {
	servers := []int{0, 1, 2, 3}
	var asked sync.WaitGroup
	asked.Add(len(servers))
	all := make(chan struct{})
	go func() { asked.Wait(); close(all) }()
	errOdd := errors.New("odd")
	answers, errs := remote.AskEach(servers, func(s int) (string, error) {
		asked.Done()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			return "", errors.New("asked one at a time")
		}
		if s%2 == 1 {
			return "", fmt.Errorf("server %d: %w", s, errOdd)
		}
		return fmt.Sprint("answer ", s), nil
	})
	assert.Equal(t, []string{"answer 0", "", "answer 2", ""}, answers)
	for i, err := range errs {
		if i%2 == 1 {
			assert.ErrorIs(t, err, errOdd, "server %d", i)
		} else {
			assert.NoError(t, err, "server %d", i)
		}
	}
}
