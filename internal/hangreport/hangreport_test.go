package hangreport_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contend-lab/contend/internal/hangreport"
)

// A dump in runtime.Stack's format: a library's goroutine, two of the
// module's waiting in the same place, and the test that waits for them.
const dump = `goroutine 7 [select]:
github.com/go-zookeeper/zk.(*Conn).sendLoop(0xc000123)
	/root/go/pkg/mod/github.com/go-zookeeper/zk@v1.0.4/conn.go:766 +0x1a5
created by github.com/go-zookeeper/zk.(*Conn).loop in goroutine 6
	/root/go/pkg/mod/github.com/go-zookeeper/zk@v1.0.4/conn.go:455 +0x2c5

goroutine 709913 [chan receive, 22 minutes]:
github.com/go-zookeeper/zk.(*Lock).LockWithData(0xc001111310, {0x2832fc0, 0x0, 0x0})
	/root/go/pkg/mod/github.com/go-zookeeper/zk@v1.0.4/lock.go:137 +0x90b
github.com/contend-lab/contend/remote/zkref.(*Lock).acquire.func1()
	/check/work/main/remote/zkref/zkref.go:133 +0x45
created by github.com/contend-lab/contend/remote/zkref.(*Lock).acquire in goroutine 707898
	/check/work/main/remote/zkref/zkref.go:133 +0x3dd

goroutine 709923 [chan receive, 22 minutes]:
github.com/go-zookeeper/zk.(*Lock).LockWithData(0xc0011986e0, {0x2832fc0, 0x0, 0x0})
	/root/go/pkg/mod/github.com/go-zookeeper/zk@v1.0.4/lock.go:137 +0x90b
github.com/contend-lab/contend/remote/zkref.(*Lock).acquire.func1()
	/check/work/main/remote/zkref/zkref.go:133 +0x45
created by github.com/contend-lab/contend/remote/zkref.(*Lock).acquire in goroutine 707904
	/check/work/main/remote/zkref/zkref.go:133 +0x3dd

goroutine 707800 [semacquire, 22 minutes]:
sync.(*WaitGroup).Wait(0xc000456)
	/usr/local/go/src/sync/waitgroup.go:118 +0x48
github.com/contend-lab/contend/contendtest.runContenders(0x64, 0x77359400)
	/check/work/main/contendtest/lockrun.go:289 +0x3a5
github.com/contend-lab/contend/harness.TestRemoteLocks.func1(0xc000789)
	/check/work/main/harness/remote_test.go:67 +0x2b1
testing.tRunner(0xc000789, 0xc000abc)
	/usr/local/go/src/testing/testing.go:1792 +0xf4
created by testing.(*T).Run in goroutine 707000
	/usr/local/go/src/testing/testing.go:1851 +0x413
`

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxLines int
		want     []string // in this order
		wantNot  []string
	}{
		{"all", 50,
			[]string{
				"2× [chan receive, 22 minutes]",
				"github.com/go-zookeeper/zk.(*Lock).LockWithData  lock.go:137",
				"remote/zkref.(*Lock).acquire.func1  zkref.go:133",
				"1× [semacquire, 22 minutes]",
				"sync.(*WaitGroup).Wait  waitgroup.go:118",
				"contendtest.runContenders  lockrun.go:289",
				"harness.TestRemoteLocks.func1  remote_test.go:67",
			},
			[]string{"sendLoop", "in goroutine", "0xc0", "more groups"}},
		{"the test kept, the rest left out", 6,
			[]string{"(1 more groups left out)", "1× [semacquire, 22 minutes]", "harness.TestRemoteLocks.func1"},
			[]string{"zkref"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			hangreport.Summarize(&b, dump, tc.maxLines)
			out := b.String()
			t.Logf("\n%s", out)
			assert.LessOrEqual(t, strings.Count(out, "\n"), tc.maxLines, "the summary is longer than its bound")
			at := 0
			for _, w := range tc.want {
				i := strings.Index(out[at:], w)
				if assert.GreaterOrEqual(t, i, 0, "%q missing, or out of order", w) {
					at += i
				}
			}
			for _, w := range tc.wantNot {
				assert.NotContains(t, out, w)
			}
		})
	}
}

// TestArm runs this test binary again with a short -test.timeout and a
// test that blocks: Arm must end it, with status 2, the summary naming the
// blocked test last, before go test's own timeout panics.
func TestArm(t *testing.T) {
	if os.Getenv("HANGREPORT_BLOCK") == "1" {
		stop := hangreport.Arm(2 * time.Second)
		defer stop()
		select {} // hangs: Arm ends the process
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestArm$", "-test.timeout=5s")
	cmd.Env = append(os.Environ(), "HANGREPORT_BLOCK=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the blocked binary did not fail:\n%s", out)
	assert.Equal(t, 2, exit.ExitCode())
	assert.Less(t, time.Since(start), 5*time.Second, "go test's timeout came first")
	assert.NotContains(t, string(out), "panic: test timed out")
	tail := string(out[bytes.LastIndex(out, []byte("hangreport: goroutines")):])
	assert.Contains(t, tail, "internal/hangreport_test.TestArm")
	assert.Contains(t, tail, "[select (no cases)")
}

// TestArmWithoutTimeout: with -test.timeout=0 there is nothing to come
// before, and Arm must not end a test that takes its time.
func TestArmWithoutTimeout(t *testing.T) {
	if os.Getenv("HANGREPORT_SLOW") == "1" {
		stop := hangreport.Arm(time.Second)
		defer stop()
		time.Sleep(2 * time.Second)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestArmWithoutTimeout$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "HANGREPORT_SLOW=1")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "hangreport")
}
