package zklab

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-zookeeper/zk"
)

// Both the Lock and the Semaphore are a queue of ephemeral sequential
// znodes under one parent: contender i creates "<kind>-<guid>-<n>-" and the
// server appends the parent's next sequence number. The guid lets a
// contender whose create's reply was lost find its node (ZooKeeper's create
// of a sequential node is not idempotent: a retry would make a second one),
// as Curator's protection mode does; n is the permits it asks for.

// node is one contender's znode in a queue.
type node struct {
	name string // child name under the parent
	seq  int64  // the sequence number the server appended
	n    int64  // permits asked for
}

// parseNode reads "<kind>-<guid>-<n>-<seq>".
func parseNode(kind, name string) (node, bool) {
	rest, ok := strings.CutPrefix(name, kind+"-")
	if !ok {
		return node{}, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return node{}, false
	}
	n, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || n < 1 {
		return node{}, false
	}
	return node{name: name, seq: seq, n: n}, true
}

// queueOf returns the kind's nodes among children, in sequence order.
func queueOf(kind string, children []string) []node {
	q := make([]node, 0, len(children))
	for _, c := range children {
		if nd, ok := parseNode(kind, c); ok {
			q = append(q, nd)
		}
	}
	slices.SortFunc(q, func(a, b node) int { return cmp.Compare(a.seq, b.seq) })
	return q
}

func indexOf(q []node, name string) int {
	return slices.IndexFunc(q, func(nd node) bool { return nd.name == name })
}

// mine is the node a contender created, and the session it belongs to.
type mine struct {
	node
	path string
	sess Session
}

// ---- requests bounded by a context ----

// call runs fn, a go-zookeeper request, and returns its error, or ctx's
// error once ctx is done, leaving fn to finish in the background (its
// results are then never read). go-zookeeper's requests take no context;
// without this a request to a stalled server waits for go-zookeeper's
// receive timeout, two thirds of the session timeout, or longer while it
// reconnects.
func (c *Client) call(ctx context.Context, fn func() error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return fn()
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The request helpers below read what fn wrote only when call returns
// fn's own result: when ctx wins, fn may still be writing.

func (c *Client) children(ctx context.Context, path string) ([]string, error) {
	var kids []string
	if err := c.call(ctx, func() (err error) {
		kids, _, err = c.conn.Children(path)
		return err
	}); err != nil {
		return nil, err
	}
	return kids, nil
}

func (c *Client) exists(ctx context.Context, path string) (bool, *zk.Stat, error) {
	var ok bool
	var st *zk.Stat
	if err := c.call(ctx, func() (err error) {
		ok, st, err = c.conn.Exists(path)
		return err
	}); err != nil {
		return false, nil, err
	}
	return ok, st, nil
}

func (c *Client) existsW(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	var ok bool
	var st *zk.Stat
	var ch <-chan zk.Event
	if err := c.call(ctx, func() (err error) {
		ok, st, ch, err = c.conn.ExistsW(path)
		return err
	}); err != nil {
		return false, nil, nil, err
	}
	return ok, st, ch, nil
}

func (c *Client) childrenW(ctx context.Context, path string) ([]string, <-chan zk.Event, error) {
	var kids []string
	var ch <-chan zk.Event
	if err := c.call(ctx, func() (err error) {
		kids, _, ch, err = c.conn.ChildrenW(path)
		return err
	}); err != nil {
		return nil, nil, err
	}
	return kids, ch, nil
}

func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	var data []byte
	if err := c.call(ctx, func() (err error) {
		data, _, err = c.conn.Get(path)
		return err
	}); err != nil {
		return nil, err
	}
	return data, nil
}

// testHookBeforeLeave, if set, runs before a TryAcquire leaves the queue:
// tests stall it there.
var testHookBeforeLeave func()

// leave deletes own node atomically with a check that every node in
// ahead still exists: proof that own node did not get ahead of them (it
// could not have been granted anything) while it waited to be deleted. It
// returns zk.ErrNoNode if one of them is gone (or own node is).
func (c *Client) leave(ctx context.Context, own string, parent string, ahead []node) error {
	if hook := testHookBeforeLeave; hook != nil {
		hook()
	}
	ops := make([]any, 0, len(ahead)+1)
	for _, a := range ahead {
		ops = append(ops, &zk.CheckVersionRequest{Path: parent + "/" + a.name, Version: -1})
	}
	ops = append(ops, &zk.DeleteRequest{Path: own, Version: -1})
	return c.call(ctx, func() error {
		_, err := c.conn.Multi(ops...)
		return err
	})
}

// ---- creating and abandoning nodes ----

// definitive reports whether err is the servers' answer (the request ran,
// or was refused), as opposed to a lost connection or a context that ended,
// after which it may or may not have run.
func definitive(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNodeExists),
		errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNotEmpty),
		errors.Is(err, zk.ErrNoChildrenForEphemerals), errors.Is(err, zk.ErrNoAuth),
		errors.Is(err, zk.ErrInvalidACL), errors.Is(err, zk.ErrInvalidPath),
		errors.Is(err, zk.ErrBadArguments), errors.Is(err, zk.ErrSessionExpired):
		return true
	}
	return false
}

type created struct {
	path string
	err  error
}

// create makes this contender's node under parent: ephemeral, sequential,
// named for kind, a fresh guid and n. A create whose reply is lost is
// looked for by its guid. If ctx ends first, the create is abandoned: its
// node, should it exist, is deleted in the background. A node is returned
// only if the session that holds it is the one the returned mine names.
//
// With persist, a failure that may pass (a lost connection, an expired
// session) is retried with backoff until ctx ends; without it, only an
// expired session, and a lost reply whose node turned out not to exist (up
// to three attempts in all).
func (c *Client) create(ctx context.Context, parent, kind string, n int64, persist bool) (mine, error) {
	guid := strings.ToLower(crand.Text())
	prefix := fmt.Sprintf("%s-%s-%d-", kind, guid, n)
	b := newBackoff()
	for attempts := 0; ; {
		if c.closed.Load() {
			return mine{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return mine{}, err
		}
		sess := c.Session()
		notMade := false // a lost reply, and the node is not there
		res := make(chan created, 1)
		go func() {
			p, err := c.conn.Create(parent+"/"+prefix, nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
			res <- created{p, err}
		}()
		var r created
		select {
		case r = <-res:
		case <-ctx.Done():
			c.abandon(res, parent, prefix)
			return mine{}, ctx.Err()
		}
		if r.err != nil && !definitive(r.err) {
			// The reply was lost: the node may exist. Look for it until
			// the servers answer (Acquire) or for a while (TryAcquire).
			for {
				path, err := c.find(ctx, parent, prefix)
				if err == nil && path != "" {
					r = created{path: path}
				}
				if err == nil {
					break
				}
				if ctx.Err() != nil || !persist {
					c.abandonPath(parent, prefix, "")
					if ctx.Err() != nil {
						return mine{}, ctx.Err()
					}
					return mine{}, r.err
				}
			}
			if r.err != nil {
				// Not there. A create still on its way could make it
				// later: have that one deleted, and use a new name.
				notMade = true
				c.abandonPath(parent, prefix, "")
				prefix = fmt.Sprintf("%s-%s-%d-", kind, strings.ToLower(crand.Text()), n)
			}
		}
		attempts++
		switch {
		case r.err == nil && sess.Alive():
			nd, ok := parseNode(kind, r.path[len(parent)+1:])
			if !ok {
				return mine{}, fmt.Errorf("zklab: the server named the node %q", r.path)
			}
			return mine{node: nd, path: r.path, sess: sess}, nil
		case r.err == nil:
			// The session ended while the create was under way: the node
			// may be the next session's. Start again.
			c.abandonPath(parent, prefix, r.path)
		case errors.Is(r.err, zk.ErrSessionExpired):
			// The node, if any, went with the session: start again.
		case definitive(r.err):
			return mine{}, r.err
		case !persist && (!notMade || attempts >= 3):
			return mine{}, r.err
		}
		if err := sleep(ctx, b.next()); err != nil {
			return mine{}, err
		}
	}
}

// find returns the path of the child of parent whose name starts with
// prefix, or "" if there is none. It lists parent until the servers
// answer, ctx ends, or a third of the session timeout has passed (by then
// go-zookeeper has reconnected, or given the connection up).
func (c *Client) find(ctx context.Context, parent, prefix string) (string, error) {
	b := newBackoff()
	deadline := time.Now().Add(c.timeout / 3)
	for {
		kids, err := c.children(ctx, parent)
		if err == nil {
			for _, k := range kids {
				if strings.HasPrefix(k, prefix) {
					return parent + "/" + k, nil
				}
			}
			return "", nil
		}
		if definitive(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return "", err
		}
		if err := sleep(ctx, b.next()); err != nil {
			return "", err
		}
	}
}

// abandon deletes, in the background, the node that the create answering
// on res makes, if it makes one; if its reply is lost it looks for the
// node by its prefix.
func (c *Client) abandon(res <-chan created, parent, prefix string) {
	c.background(func() {
		r := <-res
		if r.err != nil && definitive(r.err) {
			return
		}
		c.deleteNode(parent, prefix, r.path)
	})
}

// abandonPath deletes in the background the node at path, or if path is
// empty, the node under parent whose name starts with prefix.
func (c *Client) abandonPath(parent, prefix, path string) {
	c.background(func() { c.deleteNode(parent, prefix, path) })
}

// deleteNode deletes path (or looks for it by prefix first), retrying
// until the servers answer or the client closes. It does not stop when a
// session ends: the node may belong to the next one (a create queued while
// the client reconnected is sent in the new session).
func (c *Client) deleteNode(parent, prefix, path string) {
	b := newBackoff()
	for !c.closed.Load() {
		var err error
		if path == "" {
			var kids []string
			kids, _, err = c.conn.Children(parent)
			if errors.Is(err, zk.ErrNoNode) {
				return
			}
			if err == nil {
				for _, k := range kids {
					if strings.HasPrefix(k, prefix) {
						path = parent + "/" + k
					}
				}
				if path == "" {
					return
				}
			}
		}
		if err == nil {
			err = c.conn.Delete(path, -1)
			if definitive(err) {
				return
			}
		}
		time.Sleep(b.next())
	}
}

// ---- paths ----

// Root is the znode under which the registry's keys live (see PathFor).
const Root = "/contend"

// PathFor returns the znode path of the registry's key: Root + "/" + key.
// The key must be a valid znode name: not empty, "." or "..", and without
// "/", NUL, control characters or the code points ZooKeeper rejects.
func PathFor(key string) (string, error) {
	if strings.Contains(key, "/") {
		return "", fmt.Errorf("zklab: key %q: %w: it must not contain '/'", key, ErrBadPath)
	}
	p := Root + "/" + key
	if err := checkPath(p); err != nil {
		return "", err
	}
	return p, nil
}

// ErrBadPath is returned (wrapped) for a znode path ZooKeeper would reject.
var ErrBadPath = errors.New("zklab: invalid znode path")

// checkPath applies ZooKeeper's rules for a node's path (PathUtils in the
// server): absolute, no empty, "." or ".." element, no trailing slash, none
// of the code points it reserves; and not the server's own /zookeeper tree
// or the root itself.
func checkPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("zklab: path %q: %w: %s", p, ErrBadPath, why) }
	switch {
	case p == "":
		return bad("empty")
	case p[0] != '/':
		return bad("not absolute")
	case p == "/":
		return bad("the root cannot hold a queue")
	case strings.HasSuffix(p, "/"):
		return bad("trailing '/'")
	case p == "/zookeeper" || strings.HasPrefix(p, "/zookeeper/"):
		return bad("the server's own tree")
	case !utf8.ValidString(p):
		return bad("not UTF-8")
	}
	for _, el := range strings.Split(p[1:], "/") {
		if el == "" || el == "." || el == ".." {
			return bad(fmt.Sprintf("element %q", el))
		}
	}
	for _, r := range p {
		if r == 0 || (r > 0 && r < 0x20) || (r >= 0x7f && r <= 0x9f) ||
			(r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff) {
			return bad(fmt.Sprintf("code point %U", r))
		}
	}
	return nil
}

// ensure creates path's missing ancestors (empty) and path itself with
// data, and returns path's data.
func (c *Client) ensure(ctx context.Context, path string, data []byte) ([]byte, error) {
	for {
		got, err := c.get(ctx, path)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, err
		}
		// Create the ancestors, then the node.
		els := strings.Split(path[1:], "/")
		for i := range els {
			p := "/" + strings.Join(els[:i+1], "/")
			d := []byte(nil)
			if p == path {
				d = data
			}
			err := c.call(ctx, func() error {
				_, err := c.conn.Create(p, d, 0, zk.WorldACL(zk.PermAll))
				return err
			})
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return nil, err
			}
		}
	}
}

// ---- small helpers ----

// backoff is capped exponential backoff with jitter: each wait is uniform
// in [d/2, d], and d doubles from 2 ms up to 200 ms.
type backoff struct{ d time.Duration }

func newBackoff() backoff { return backoff{d: 2 * time.Millisecond} }

func (b *backoff) next() time.Duration {
	d := b.d
	b.d = min(2*b.d, 200*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done, and returns ctx.Err() in that case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
