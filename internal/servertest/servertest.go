// Package servertest starts a remote backend's servers for a test or
// benchmark and stops them when it ends, whatever happens in between.
package servertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/contend-lab/contend/remote"
)

// StartTimeout bounds the start of one deployment, a ZooKeeper ensemble's
// election included.
const StartTimeout = 60 * time.Second

// Start starts d of b and registers t.Cleanup to stop it, also when the
// test fails later. If b's server is not installed it fails the test with
// the error that names the install script, or skips it when the
// environment sets b.SkipEnv=1 (CI never does).
func Start(t testing.TB, b remote.Backend, d remote.Deployment) remote.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := b.Start(ctx, d)
	if err != nil {
		if errors.Is(err, remote.ErrNotInstalled) && b.Skipped() {
			t.Skipf("skipping: %v (%s=1 is set)", err, b.SkipEnv)
		}
		t.Fatalf("starting %s %s: %v", b.Name, d.Name, err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StartNamed is Start for the deployment of b named name.
func StartNamed(t testing.TB, b remote.Backend, name string) remote.Cluster {
	t.Helper()
	d, ok := b.Deployment(name)
	if !ok {
		t.Fatalf("backend %s has no deployment %q", b.Name, name)
	}
	return Start(t, b, d)
}
