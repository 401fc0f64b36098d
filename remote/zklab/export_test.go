package zklab

// CutAfter makes c's connection drop right after it sends a request with
// opcode op, times times: the server gets the request, the client never
// gets the reply.
func CutAfter(c *Client, op int32, times int32) {
	c.s.cutOp.Store(op)
	c.s.cut.Store(times)
}

// OpCreate is ZooKeeper's opcode of a create.
const OpCreate = 1

// SetBeforeLeave makes every TryAcquire that found nodes ahead call hook
// before it leaves the queue (nil: no hook). Tests run one at a time, so a
// package variable is safe here.
func SetBeforeLeave(hook func()) { testHookBeforeLeave = hook }
