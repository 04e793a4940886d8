// The daemon's hot path allocates nothing once warm: a stream of round trips
// (a client's rpc(), an echo server's send_receive) through the real Server
// on a real socket, with every heap allocation of the event-loop thread
// counted. This binary replaces malloc and its relatives (forwarding to
// glibc's), so the count covers operator new and Cap'n Proto's own callocs.
// Not built with PORTD_SANITIZE: a sanitizer owns malloc itself.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "daemon/server/driver.h"
#include "portd/portd.h"
#include "tests/integration/inprocess_server.h"

namespace {

std::atomic<pthread_t> g_counted_thread{0};
std::atomic<uint64_t> g_allocations{0};

inline void note_allocation() {
  const pthread_t t = g_counted_thread.load(std::memory_order_relaxed);
  if (t != 0 && pthread_equal(t, pthread_self()))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  note_allocation();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}

namespace portd::testing {
namespace {

constexpr int32_t kStop = 9999;

// Echoes every request back through its send-once reply right, as
// portbench's echo server does, until a message with id kStop.
void echo(const std::string& socket, std::atomic<bool>* ready) {
  auto task = Task::connect(ConnectOptions{socket, "echo"});
  ASSERT_TRUE(task.ok());
  auto port = (*task)->check_in("com.portd.test.alloc");
  ASSERT_TRUE(port.ok());
  ready->store(true);
  auto request = port->receive();
  while (request.ok() && request->id != kStop) {
    OutgoingMessage reply;
    reply.set_remote(request->remote, Disposition::kMoveSendOnce).set_id(request->id + 1);
    reply.body() = std::move(request->body);
    request = (*task)->send_receive(reply, {}, port->name(), {});
  }
  EXPECT_TRUE(request.ok()) << status_name(request.status());
}

TEST(DaemonAllocations, ARoundTripAllocatesNothingInTheEventLoopOnceWarm) {
  InProcessServer daemon(server::ServerOptions{});
  std::atomic<bool> ready{false};
  std::thread server([&] { echo(daemon.path(), &ready); });
  while (!ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto task = Task::connect(ConnectOptions{daemon.path(), "client"});
  ASSERT_TRUE(task.ok());
  auto service = (*task)->look_up("com.portd.test.alloc");
  ASSERT_TRUE(service.ok());
  auto reply_port = (*task)->make_port();
  ASSERT_TRUE(reply_port.ok());

  auto round_trips = [&](size_t size, int count) {
    std::vector<std::byte> body(size, std::byte{0x5a});
    for (int i = 0; i < count; ++i) {
      OutgoingMessage request;
      request.set_remote(*service).set_id(i).set_body(body);
      auto reply = (*task)->rpc(request, *reply_port);
      ASSERT_TRUE(reply.ok()) << status_name(reply.status());
      ASSERT_EQ(reply->id, i + 1);
      ASSERT_EQ(reply->body, body);
    }
  };
  // Up to the largest body the daemon copies into its replies: a larger one
  // is referenced, which costs Cap'n Proto a few allocations for the extra
  // segment (daemon/server/driver.h, kReferenceBodyBytes).
  for (size_t size : {size_t{64}, size_t{4096}, server::kReferenceBodyBytes - 1}) {
    SCOPED_TRACE("body of " + std::to_string(size) + " bytes");
    round_trips(size, 500);  // warm: pools, buffers and tables at their size
    g_allocations.store(0);
    g_counted_thread.store(daemon.loop_thread());
    round_trips(size, 2000);
    g_counted_thread.store(0);
    EXPECT_EQ(g_allocations.load(), 0u);
  }

  OutgoingMessage stop;
  stop.set_remote(*service).set_id(kStop);
  ASSERT_EQ((*task)->send(stop), Status::kSuccess);
  server.join();
}

}  // namespace
}  // namespace portd::testing
