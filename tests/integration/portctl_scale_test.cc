// Introspection at scale: 100,000 ports. Listing them must not hold the
// daemon: it takes many pages, each a short piece of work, and a client
// asking something else meanwhile is answered between pages. Checked by
// counting (pages, and replies the other client got between them), never
// by timing.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/server/introspect.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/integration/portctl_support.h"

namespace portd::testing {
namespace {

constexpr int kPorts = 100000;
// Per-task port limit is 16384: spread the ports over several tasks.
constexpr int kTasks = 7;

// Allocates `count` ports on a fresh connection, pipelining the requests.
void allocate_ports(RawClient& client, int count) {
  proto::FrameWriter writer;
  for (int i = 0; i < count; ++i) {
    capnp::MallocMessageBuilder message;
    auto r = message.initRoot<wire::Request>();
    r.setId(static_cast<uint64_t>(i) + 2);
    r.initAllocate().setRight(1);  // MACH_PORT_RIGHT_RECEIVE
    writer.append(message);
  }
  for (;;) {
    const int r = writer.write_to(client.fd());
    if (r == 0) break;
    ASSERT_EQ(r, -EAGAIN);
    pollfd p{client.fd(), POLLOUT, 0};
    ::poll(&p, 1, 1000);
  }
  for (int i = 0; i < count; ++i) {
    bool good = false;
    ASSERT_TRUE(client.next_reply(
        [&](wire::Reply::Reader reply, auto&) { good = reply.getStatus() == 0; }, 20000));
    ASSERT_TRUE(good) << "allocate " << i;
  }
}

Json status_of(RawClient& client, uint64_t id) {
  Json out;
  client.request(id, [](wire::Request::Builder r) {
    r.initIntrospect().setWhat(wire::IntrospectWhat::STATUS);
  });
  EXPECT_TRUE(client.next_reply([&](wire::Reply::Reader reply, auto&) {
    ASSERT_EQ(reply.which(), wire::Reply::INTROSPECTION);
    out = Json::parse(std::string(reply.getIntrospection().getJson()));
  }));
  return out;
}

TEST(PortctlScaleTest, AHundredThousandPortsAreListedInPagesWhileOthersAreServed) {
  DaemonProcess daemon;
  ASSERT_TRUE(daemon.started());
  std::vector<std::unique_ptr<RawClient>> owners;
  for (int t = 0; t < kTasks; ++t) {
    owners.push_back(std::make_unique<RawClient>(daemon.socket_path()));
    ASSERT_NE(owners.back()->hello("owner"), 0u);
    const int count = kPorts / kTasks + (t < kPorts % kTasks ? 1 : 0);
    allocate_ports(*owners.back(), count);
  }

  RawClient lister(daemon.socket_path());
  RawClient pinger(daemon.socket_path());
  ASSERT_NE(lister.hello("lister"), 0u);
  ASSERT_NE(pinger.hello("pinger"), 0u);
  const Json before = status_of(lister, 2);
  ASSERT_EQ(before["ports"], kPorts);

  uint64_t next_id = 100;
  auto ask_page = [&](const std::string& cursor) {
    ASSERT_TRUE(lister.request(++next_id, [&](wire::Request::Builder r) {
      auto q = r.initIntrospect();
      q.setWhat(wire::IntrospectWhat::PORTS);
      q.setCursor(cursor);
    }));
  };
  auto ping = [&] {
    ASSERT_TRUE(pinger.request(++next_id, [](wire::Request::Builder r) { r.setNames(); }));
  };

  ask_page("");
  ping();
  size_t pages = 0, pings = 0, items = 0, largest_page = 0;
  size_t since_last_page = 0, longest_gap = 0, gap = 0;
  uint64_t last_port = 0;
  bool done = false;
  while (!done) {
    pollfd fds[2] = {{lister.fd(), POLLIN, 0}, {pinger.fd(), POLLIN, 0}};
    ASSERT_GT(::poll(fds, 2, 20000), 0) << "no answer for 20 s";
    if (fds[1].revents != 0) {
      ASSERT_TRUE(pinger.next_reply([](wire::Reply::Reader, auto&) {}));
      ++pings;
      ++since_last_page;
      ping();
    }
    if (fds[0].revents != 0) {
      std::string next;
      ASSERT_TRUE(lister.next_reply([&](wire::Reply::Reader reply, auto&) {
        ASSERT_EQ(reply.getStatus(), 0);
        auto page = reply.getIntrospection();
        largest_page = std::max<size_t>(largest_page, page.getJson().size());
        const Json j = Json::parse(std::string(page.getJson()));
        for (const auto& p : j) {
          const uint64_t id = p["port"].get<uint64_t>();
          ASSERT_EQ(id, last_port + 1) << "ports listed out of order or twice";
          last_port = id;
          ++items;
        }
        next = page.getNext();
      }));
      ++pages;
      gap = since_last_page == 0 ? gap + 1 : 0;
      longest_gap = std::max(longest_gap, gap);
      since_last_page = 0;
      if (next.empty()) {
        done = true;
      } else {
        ask_page(next);
      }
    }
  }
  EXPECT_EQ(items, static_cast<size_t>(kPorts));
  // Many short pieces of work: no page holds more than the cap of items...
  EXPECT_GE(pages, static_cast<size_t>(kPorts) / server::kPageMax);
  EXPECT_LE(largest_page, 2 * server::kPageBytes);
  // ...and the other client was answered all along, not after the listing.
  EXPECT_GE(pings, pages / 2) << pages << " pages";
  EXPECT_LE(longest_gap, 4u) << "pages in a row without a ping answered";

  // Looking changed nothing.
  const Json after = status_of(lister, 3);
  EXPECT_EQ(after["ports"], kPorts);
  EXPECT_EQ(after["counters"], before["counters"]);

  Outcome status = portctl(daemon.directory(), daemon.socket_path(), {"--json", "status"});
  ASSERT_EQ(status.code, 0) << status.err;
  EXPECT_EQ(status.json()["ports"], kPorts);
}

}  // namespace
}  // namespace portd::testing
