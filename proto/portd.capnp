# portd.capnp — the protocol between libportd and the portd daemon.
#
# A Unix stream socket carries frames; each frame is one Cap'n Proto message in
# the standard stream framing (proto/frame.h enforces the size, segment,
# traversal and nesting limits before anything is allocated). The client sends
# Request frames, the daemon answers with Reply frames carrying the request's
# id. Replies may come back in any order: a request that has to wait (a send to
# a full queue, a receive on an empty one, a look-up of a name not yet
# registered) is parked in the daemon and answered later, while the connection
# goes on serving other requests.
#
# File descriptors (out-of-line memory) travel with SCM_RIGHTS. A frame says in
# `fdCount` how many it carries; they are sent with the frame's first bytes, so
# by the time a frame has been read completely its fds have arrived.
#
# Names are 32-bit Mach port names in the calling task's name space. Statuses
# are the int32 values of portd::Status (Mach's codes).
#
# Ordinals are only ever appended.

@0xb8b51912e8c8dbe5;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("portd::wire");

const protocolVersion :UInt32 = 2;
# Bumped on any change a peer of the previous version could not handle.
# 2: sendBatch and receiveBatch. A client that was answered version 1 must
# not use them (a daemon of version 1 answers KERN_NOT_SUPPORTED).

# ---------------------------------------------------------------------------
# Messages

struct OutDescriptor {
  # One descriptor of a message being sent, as the sender names it.
  union {
    port @0 :PortDescriptor;
    ool @1 :OolDescriptor;
    oolPorts @2 :OolPortsDescriptor;
  }
}

struct PortDescriptor {
  name @0 :UInt32;
  # In a sent message: the sender's name. In a received one: the receiver's
  # name for the right (0 for none, 0xffffffff for a dead name).
  disposition @1 :UInt8;
  # Sending: MACH_MSG_TYPE_MOVE_RECEIVE (16) ... MAKE_SEND_ONCE (21).
  # Received: the right's type, MACH_MSG_TYPE_PORT_RECEIVE (16), PORT_SEND (17)
  # or PORT_SEND_ONCE (18).
}

struct OolDescriptor {
  # Out-of-line memory: a sealed memfd (or, when volatile, a pool segment)
  # passed with SCM_RIGHTS in the same frame, in descriptor order. Sealed:
  # SHRINK, GROW, WRITE and SEAL; volatile: at least SHRINK (so that a
  # receiver's mapping can never lose its pages).
  size @0 :UInt64;
  # Bytes of the region that belong to the message.
  volatile @1 :Bool;
  # The region is not sealed: the sender may still write to it.
  deallocate @2 :Bool;
  # Sent in move mode (the sender gave its buffer up). Informational.
  releaseSignal @3 :Bool;
  # Volatile regions only: a second fd follows the region's in the frame, the
  # write end of a pipe whose read end the sender keeps. The receiver closes
  # it once it no longer maps the region; the sender sees end of file and
  # reuses the region (docs/ool.md). The daemon only holds and passes it on.
  body @4 :Bool;
  # The region is the message's body, sent out of line because it was large.
  # Its `size` bytes follow the inline body; libportd's C++ API gives them
  # back as the body. Counted as body bytes, not as a descriptor, in the Mach
  # layout size a receive checks against its buffer.
}

struct OolPortsDescriptor {
  names @0 :List(UInt32);
  disposition @1 :UInt8;
  # One disposition for every name, as in Mach.
}

struct OutMessage {
  # A message as its sender describes it.
  remote @0 :UInt32;
  # Destination: a name holding a send or send-once right (or receive right,
  # with MAKE_SEND / MAKE_SEND_ONCE).
  remoteDisposition @1 :UInt8;
  local @2 :UInt32;
  # Reply port, or 0.
  localDisposition @3 :UInt8;
  id @4 :Int32;
  body @5 :Data;
  descriptors @6 :List(OutDescriptor);
}

struct Trailer {
  seqno @0 :UInt64;
  # The receiving port's sequence number for this message.
  senderPid @1 :UInt32;
  senderUid @2 :UInt32;
  senderGid @3 :UInt32;
  senderTask @4 :UInt64;
  # The daemon's id of the sending task; 0 for a notification from the daemon.
}

struct InMessage {
  # A message as its receiver gets it: every name is in the receiver's space.
  remote @0 :UInt32;
  # The reply right (0 if none).
  remoteType @1 :UInt8;
  # PORT_SEND (17) or PORT_SEND_ONCE (18), or 0.
  local @2 :UInt32;
  # The receiver's name of the port the message was queued on (for a receive
  # on a port set: the member's name).
  localType @3 :UInt8;
  # The type of the right the sender used to reach the destination.
  id @4 :Int32;
  body @5 :Data;
  descriptors @6 :List(OutDescriptor);
  # Same shape as sent; port names and dispositions are the receiver's.
  trailer @7 :Trailer;
}

# ---------------------------------------------------------------------------
# Requests

struct Hello {
  version @0 :UInt32;
  # The highest protocol version the client speaks.
  command @1 :Text;
  # The client's command name, for portctl. Informational.
}

struct Allocate { right @0 :UInt32; }
# MACH_PORT_RIGHT_RECEIVE, _PORT_SET or _DEAD_NAME.

struct NameOnly { name @0 :UInt32; }

struct ModRefs {
  name @0 :UInt32;
  right @1 :UInt32;
  delta @2 :Int32;
}

struct InsertRight {
  name @0 :UInt32;
  # The name the right is to have.
  right @1 :UInt32;
  # The caller's name of the right it is made from.
  disposition @2 :UInt8;
}

struct ExtractRight {
  name @0 :UInt32;
  disposition @1 :UInt8;
}

struct GetRefs {
  name @0 :UInt32;
  right @1 :UInt32;
}

struct SetAttributes {
  name @0 :UInt32;
  qlimit @1 :UInt32;
}

struct MoveMember {
  member @0 :UInt32;
  after @1 :UInt32;
  # A port-set name, or 0 to take the member out of its set.
}

struct RequestNotification {
  name @0 :UInt32;
  variant @1 :Int32;
  # MACH_NOTIFY_PORT_DESTROYED (69), NO_SENDERS (70) or DEAD_NAME (72).
  sync @2 :UInt32;
  notify @3 :UInt32;
  # 0 cancels the request.
  notifyDisposition @4 :UInt8;
  # MAKE_SEND_ONCE or MOVE_SEND_ONCE.
}

struct SendOptions {
  timeoutMs @0 :Int64 = -1;
  # Negative: wait for room as long as it takes. 0: fail at once with
  # MACH_SEND_TIMED_OUT if the queue is full. n: wait at most n ms.
  cache @1 :Bool;
  # Cache-on-full: when the queue is full (after the timeout, if any), the
  # daemon keeps the message, answers PORTD_SEND_WILL_NOTIFY and later sends a
  # message-accepted notification to `notify`.
  notify @2 :UInt32;
  notifyDisposition @3 :UInt8;
  thread @4 :UInt64;
  # The sending thread, as the client identifies it: at most one cached
  # message per thread may be pending.
}

struct ReceiveOptions {
  name @0 :UInt32;
  # A receive right or a port set.
  timeoutMs @1 :Int64 = -1;
  # As for SendOptions: negative waits forever, 0 returns at once.
  maxSize @2 :UInt32;
  # The receiver's buffer in Mach layout bytes (header, descriptors, body and
  # the requested trailer); 0 means no limit.
  large @3 :Bool;
  # MACH_RCV_LARGE: a message too large for maxSize stays queued and its size
  # is reported; without it the message is destroyed.
  trailerSize @4 :UInt32;
  # Bytes of trailer the receiver asked for, counted against maxSize.
}

struct Send {
  message @0 :OutMessage;
  options @1 :SendOptions;
}

struct SendReceive {
  message @0 :OutMessage;
  sendOptions @1 :SendOptions;
  receiveOptions @2 :ReceiveOptions;
}

struct SendBatch {
  # Several messages in one request, each sent as a `send` with `options`
  # would be, in order. Each message's outcome is its own: a refused one does
  # not stop the others, one that must wait (a full queue) waits as a single
  # send would and holds the rest back until it has its outcome (they go one
  # after another, as from one thread; the timeout counts from the batch's
  # arrival), and the reply goes out once every message has its outcome.
  # The frame's fds are the OOL descriptors' of every message, message after
  # message, each in descriptor order (Request.fdCount counts them all).
  messages @0 :List(OutMessage);
  # At most the daemon's batch limit (1024 by default); more is refused
  # with KERN_INVALID_ARGUMENT before anything is sent.
  options @1 :SendOptions;
}

struct ReceiveBatch {
  # Several messages in one request: the first is received as `options` say
  # (it may wait); up to max - 1 more are taken only if they are queued
  # already, never waiting and never destroying a message too large for
  # options.maxSize (it stays queued, as with MACH_RCV_LARGE). The daemon
  # stops early when another message might not fit the reply frame (its
  # maxFrameBytes, and the fds one frame may carry).
  options @0 :ReceiveOptions;
  max @1 :UInt32;
  # 1 to the daemon's batch limit (1024 by default); 0 or more is refused
  # with KERN_INVALID_ARGUMENT.
}

struct BatchedMessage {
  # One message of a receiveBatch answer.
  status @0 :Int32;
  # KERN_SUCCESS, or MACH_RCV_HEADER_ERROR / MACH_RCV_BODY_ERROR when some of
  # its rights could not be named (they arrive as 0).
  limit @1 :Text;
  # With those statuses: the limit that kept a right from being named.
  message @2 :InMessage;
}

struct BootstrapName { name @0 :Text; }

struct BootstrapRegister {
  name @0 :Text;
  port @1 :UInt32;
  # A name holding a send right (or receive right) in the caller's space.
}

struct BootstrapLookUp {
  name @0 :Text;
  timeoutMs @1 :Int64 = 0;
  # 0: answer at once. Negative: wait until the name appears. n: wait n ms.
}

enum IntrospectWhat {
  # What an Introspect request looks at (docs/portctl.md has each answer's
  # JSON schema).
  status @0;
  # The daemon: version, uptime, counts, counters. One object.
  tasks @1;
  # Tasks, by task id. Filters: `target` (one task id), `pid`.
  ports @2;
  # Active ports, by port id.
  port @3;
  # One port in detail (`target`: its id). One object.
  rights @4;
  # One task's name space (`target`: the task id), by name.
  sets @5;
  # Port sets, by set id.
  names @6;
  # The bootstrap registry, by name.
  uids @7;
  # Per-uid accounts, by uid: each quota's use against the per-uid limit.
}

struct Introspect {
  # A read-only look inside the daemon, for portctl. Nothing it does changes
  # any state. The answer is JSON text, a page at a time: each page does a
  # bounded amount of work, so a listing of 100,000 ports never holds the
  # event loop for long. What a caller sees depends on its uid (docs/portctl.md).
  what @0 :IntrospectWhat;
  target @1 :UInt64;
  # port: the port id; rights: the task id; tasks: only this task (0: all).
  pid @2 :UInt32;
  # tasks: only tasks of this process (0: all).
  cursor @3 :Text;
  # Empty for the first page; then the previous page's `next`. Opaque.
  limit @4 :UInt32;
  # Most items per page (0: the daemon's default); the daemon may cap it.
}

struct MonitorStart {
  # Subscribes this connection to message events (send, receive, destroy).
  # A second start replaces the first subscription. All filters given must
  # match.
  port @0 :UInt64;
  # Only events on this port (0: any).
  name @1 :Text;
  # Only events on the port this bootstrap name is bound to, resolved now.
  task @2 :UInt64;
  # Only events sent by this task or to a port it receives on (0: any).
  buffer @3 :UInt32;
  # Events the daemon keeps for this client between polls (0: default).
  # When it is full, further events are dropped and counted.
}

struct MonitorPoll {
  # Takes the buffered events; waits up to `timeoutMs` for one if there are
  # none (negative: as long as it takes; 0: answer at once).
  timeoutMs @0 :Int64;
  max @1 :UInt32;
  # Most events in one answer (0: the daemon's default).
}

struct Request {
  id @0 :UInt64;
  # Chosen by the client, echoed in the reply. Must not be 0 and must not
  # repeat the id of a request still in progress.
  fdCount @1 :UInt16;
  # Descriptors passed with this frame: one per OOL descriptor, in order, and
  # after a region with releaseSignal its release fd.
  union {
    hello @2 :Hello;
    cancel @3 :UInt64;
    # Give up a parked request (by id). It is answered with
    # MACH_SEND_INTERRUPTED / MACH_RCV_INTERRUPTED / KERN_ABORTED.
    allocate @4 :Allocate;
    deallocate @5 :NameOnly;
    modRefs @6 :ModRefs;
    destroy @7 :NameOnly;
    insertRight @8 :InsertRight;
    extractRight @9 :ExtractRight;
    getRefs @10 :GetRefs;
    type @11 :NameOnly;
    names @12 :Void;
    getAttributes @13 :NameOnly;
    setAttributes @14 :SetAttributes;
    moveMember @15 :MoveMember;
    requestNotification @16 :RequestNotification;
    send @17 :Send;
    receive @18 :ReceiveOptions;
    sendReceive @19 :SendReceive;
    bootstrapCheckIn @20 :BootstrapName;
    bootstrapRegister @21 :BootstrapRegister;
    bootstrapLookUp @22 :BootstrapLookUp;
    bootstrapUnregister @23 :BootstrapName;
    bootstrapList @24 :Void;
    introspect @25 :Introspect;
    monitorStart @26 :MonitorStart;
    monitorPoll @27 :MonitorPoll;
    # Answered with monitorEvents. One poll may wait at a time.
    monitorStop @28 :Void;
    # Ends the subscription; a waiting poll is answered with what is left.
    sendBatch @29 :SendBatch;
    # Protocol version 2. Answered with sendStatuses.
    receiveBatch @30 :ReceiveBatch;
    # Protocol version 2. Answered with messages; the reply's status is the
    # first receive's (a failure comes with no messages, as a receive's
    # would; MACH_RCV_TOO_LARGE with neededSize).
  }
}

# ---------------------------------------------------------------------------
# Replies

struct HelloReply {
  version @0 :UInt32;
  # The version both sides will speak (the lower of the two).
  task @1 :UInt64;
  # The daemon's id for this task.
  daemonPid @2 :UInt32;
  maxFrameBytes @3 :UInt32;
  maxInlineBody @4 :UInt32;
  # Bodies above this must travel out of line.
  maxBatch @5 :UInt32;
  # Version 2: most messages in one sendBatch or receiveBatch (0 from a
  # daemon of version 1).
}

struct NameInfo {
  name @0 :UInt32;
  type @1 :UInt32;
  # MACH_PORT_TYPE_* bits, with MACH_PORT_TYPE_DNREQUEST where a dead-name
  # request is armed.
}

struct PortStatus {
  # mach_port_status_t.
  pset @0 :UInt32;
  seqno @1 :UInt32;
  mscount @2 :UInt32;
  qlimit @3 :UInt32;
  msgcount @4 :UInt32;
  sorights @5 :UInt32;
  srights @6 :Bool;
  pdrequest @7 :Bool;
  nsrequest @8 :Bool;
  flags @9 :UInt32;
}

struct ExtractedRight {
  name @0 :UInt32;
  type @1 :UInt8;
  # MACH_MSG_TYPE_PORT_RECEIVE / PORT_SEND / PORT_SEND_ONCE.
}

struct BootstrapEntry {
  name @0 :Text;
  uid @1 :UInt32;
  pid @2 :UInt32;
  port @3 :UInt64;
  # The daemon's port id.
  sinceUnixMs @4 :Int64;
}

struct IntrospectionPage {
  json @0 :Text;
  # status, port: one JSON object. The listings: a JSON array of this page's
  # items, in the order of their key (id or name).
  next @1 :Text;
  # The cursor for the next page; empty when this page is the last.
}

struct Reply {
  id @0 :UInt64;
  status @1 :Int32;
  fdCount @2 :UInt16;
  limit @3 :Text;
  # When a quota refused the request: the limit's name, e.g. "queued_bytes".
  # In a sendStatuses reply (whose status is KERN_SUCCESS): the limit that
  # refused the last of its messages a limit refused.
  neededSize @4 :UInt32;
  # With MACH_RCV_TOO_LARGE: the size the message needs.
  union {
    none @5 :Void;
    hello @6 :HelloReply;
    name @7 :UInt32;
    # allocate, insert (none), look-up, check-in, previous notification right.
    extracted @8 :ExtractedRight;
    refs @9 :UInt32;
    type @10 :UInt32;
    names @11 :List(NameInfo);
    attributes @12 :PortStatus;
    message @13 :InMessage;
    bootstrapList @14 :List(BootstrapEntry);
    introspection @15 :IntrospectionPage;
    monitorEvents @16 :List(Text);
    # One JSON object per event, oldest first; a {"event": "lost"} object
    # where events were dropped because the buffer was full.
    sendStatuses @17 :List(Int32);
    # sendBatch: one status per message, in order, as `send` would have
    # answered it. The reply's own status is KERN_SUCCESS.
    messages @18 :List(BatchedMessage);
    # receiveBatch: the messages taken, in the order received. Their OOL fds
    # travel with the frame, message after message (Reply.fdCount).
  }
}
