// Package zklab is the lab's ZooKeeper tier: a lock and a semaphore whose
// state is a queue of ephemeral sequential znodes, so that processes on
// different machines share them, with the guarantees ZooKeeper gives and
// Redis does not: every change is ordered by a quorum and survives a
// server's crash, and a lease lasts as long as its holder's session rather
// than a guess of how long the work will take.
//
//	Dial             a Client: one session, its leases, RoundTrips, ExpireSession
//	NewLock          the recipe of ZooKeeper's documentation: lowest node holds, waiters watch their predecessor
//	NewSemaphore     N permits in FIFO order, in the style of Curator's InterProcessSemaphoreV2
//	NewLockAt, NewSemaphoreAt   the registry's constructors: their own client on a key's path
//
// The article's design (package zknaive) and go-zookeeper's own Lock
// (package zkref) sit next to it, held to the same tests, and build on
// this package's Client, Handle, Do and NewNodeLease.
//
// # Leases are sessions
//
// A lease is the holder's node, which ZooKeeper deletes when the session
// that created it ends: the holder closes its client, or the servers hear
// nothing from it (no request, no ping) for the session timeout. A holder
// cut off from the servers, or stalled, for longer than that is no longer
// the holder, and may not know it: the protected resource must check the
// fencing token (Lease.Token, the node's creation zxid, which strictly
// increases from grant to grant, across leader changes and server
// restarts). Lease.TTL is what the holder can tell: how long the session
// is sure to last even if it hears nothing more (Session.Left); Extend
// cannot lengthen it, and only checks the node is still there. The client
// learns that its session expired when it reconnects; from then on its
// leases' Release and Extend return contend.ErrNotHeld without a round
// trip, and a new session takes over for new acquisitions.
//
// # Queues, and why TryAcquire leaves with a transaction
//
// A contender creates "<kind>-<guid>-<permits>-<seq>" under the lock's
// path; the lowest node holds the lock (a semaphore: the longest prefix of
// the queue whose permits fit). A create whose reply is lost is found again
// by its guid, since a sequential create is not idempotent (Curator's
// protection mode); a create still under way when ctx ends, and the node
// of an Acquire that gives up, are deleted in the background
// (Client.Settle waits for that).
//
// The queue keeps one invariant: the lowest node's owner holds, or will hold
// once it looks. That is what makes TryAcquire's ErrHeld true (the lock
// was held at an instant of the call, or is being handed to an Acquire in
// progress). A TryAcquire that finds nodes ahead must therefore leave
// without ever having been the lowest: it deletes its node in one
// transaction (multi) with a check that the node ahead of it still
// exists; if that node is gone, it looks again and may hold. An Acquire
// whose ctx ends leaves with a plain delete: until it lands, its node may
// be the lowest with nobody to hold (the contract's hand-off deviation).
//
// # Round trips
//
// Counted on the wire by the Client (RoundTrips; pings excluded).
// Uncontended, Acquire is three requests (create, list, and a read of the
// node for its token) and Release one; a waiter adds a watch and a list
// per wake-up, TryAcquire that fails three (create, list, the leaving
// transaction). A holder of a semaphore of more than one permit with a node
// behind it adds one write, the mark that wakes it. BenchmarkLock measures
// them per operation.
//
// # The client
//
// go-zookeeper (v1.0.4) does the protocol; the Client adds what the lab
// needs around it. Its requests take no context, so each runs on its own
// goroutine and is left to finish when ctx ends (results then dropped,
// creates then cleaned up). It exposes neither when the server last heard
// from the session, nor the session's password, nor a request count, so
// the Client wraps each connection and reads the frame headers as they
// pass (wire.go). It paces reconnection itself (hosts.go): go-zookeeper's
// own pacing sleeps a second before every reconnection to a standalone
// server. And it gives up on a handshake left unanswered for 2 s, which
// go-zookeeper would wait on for 6.7 session timeouts, and which a
// ZooKeeper restarting under load was seen to leave unanswered for good.
package zklab
