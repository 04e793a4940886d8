#include "tools/portbench/raw.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

namespace portbench::raw {

namespace {

constexpr size_t kRelayChunk = 256 * 1024;
constexpr size_t kSenderBatch = 64;

struct Pair {
  int a = -1;
  int b = -1;
};

Pair socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("portbench: socketpair");
    std::exit(1);
  }
  return {sv[0], sv[1]};
}

void close_all(const std::vector<int>& fds) {
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
}

// The relay: forwards what arrives on each route's input to its output until
// every input has ended. An output is shut down for writing once every input
// routed to it has ended, so the peer sees end of stream.
Json relay_loop(const std::vector<Pair>& routes, bool batched, size_t message_size) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::map<int, int> inputs_per_output;
  for (size_t i = 0; i < routes.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, routes[i].a, &ev);
    ++inputs_per_output[routes[i].b];
  }
  std::vector<uint8_t> buf(kRelayChunk);
  size_t active = routes.size();
  uint64_t forwarded = 0;
  epoll_event events[64];
  while (active > 0) {
    const int n = ::epoll_wait(ep, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Json{{"error", std::string("relay epoll_wait: ") + std::strerror(errno)}};
    }
    for (int e = 0; e < n; ++e) {
      const Pair& route = routes[events[e].data.u64];
      ssize_t got;
      if (batched) {
        got = ::read(route.a, buf.data(), buf.size());
      } else {
        got = ::read(route.a, buf.data(), message_size);
        if (got > 0 && static_cast<size_t>(got) < message_size &&
            !read_all(route.a, buf.data() + got, message_size - static_cast<size_t>(got)))
          got = 0;
        if (got > 0) got = static_cast<ssize_t>(message_size);
      }
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, route.a, nullptr);
        if (--inputs_per_output[route.b] == 0) ::shutdown(route.b, SHUT_WR);
        --active;
        continue;
      }
      if (!write_all(route.b, buf.data(), static_cast<size_t>(got)))
        return Json{{"error", "relay write failed"}};
      forwarded += static_cast<uint64_t>(got);
    }
  }
  ::close(ep);
  return Json{{"forwarded_bytes", forwarded}};
}

// B's side of a round trip: writes back every message until end of stream.
Json echo_loop(int fd, size_t size) {
  std::vector<uint8_t> buf(size);
  uint64_t echoed = 0;
  while (read_all(fd, buf.data(), size)) {
    if (!write_all(fd, buf.data(), size)) return Json{{"error", "echo write failed"}};
    ++echoed;
  }
  return Json{{"echoed", echoed}};
}

// A's side: `iters` round trips, each timed, after a short warm-up.
Json client_loop(int fd, size_t size, size_t iters) {
  std::vector<uint8_t> out(size), in(size);
  std::vector<double> us;
  us.reserve(iters);
  const size_t warmup = std::min<size_t>(iters / 10 + 1, 200);
  for (size_t i = 0; i < warmup + iters; ++i) {
    fill_message(out.data(), size, 0, static_cast<uint32_t>(i));
    const uint64_t t0 = now_ns();
    if (!write_all(fd, out.data(), size) || !read_all(fd, in.data(), size))
      return Json{{"error", "round trip failed"}};
    const uint64_t t1 = now_ns();
    if (std::memcmp(in.data(), out.data(), size) != 0) return Json{{"error", "echo mismatch"}};
    if (i >= warmup) us.push_back(double(t1 - t0) / 1000.0);
  }
  return Json{{"us", us}, {"bytes_checked", iters * size}};
}

}  // namespace

Json pingpong(size_t size, size_t iters) {
  Pair p = socket_pair();
  Helper echo = spawn_helper([&] {
    ::close(p.a);
    return echo_loop(p.b, size);
  });
  Helper client = spawn_helper([&] {
    ::close(p.b);
    Json r = client_loop(p.a, size, iters);
    ::close(p.a);
    return r;
  });
  close_all({p.a, p.b});
  Json result = collect(client);
  Json e = collect(echo);
  if (e.contains("error")) result["error"] = e["error"];
  return result;
}

Json relay_rtt(size_t size, size_t iters) {
  Pair ar = socket_pair();  // a: A's end, b: the relay's
  Pair br = socket_pair();  // a: B's end, b: the relay's
  Helper relay = spawn_helper([&] {
    close_all({ar.a, br.a});
    return relay_loop({{ar.b, br.b}, {br.b, ar.b}}, true, size);
  });
  Helper echo = spawn_helper([&] {
    close_all({ar.a, ar.b, br.b});
    return echo_loop(br.a, size);
  });
  Helper client = spawn_helper([&] {
    close_all({ar.b, br.a, br.b});
    Json r = client_loop(ar.a, size, iters);
    ::close(ar.a);
    return r;
  });
  close_all({ar.a, ar.b, br.a, br.b});
  Json result = collect(client);
  for (Helper* h : {&echo, &relay}) {
    Json e = collect(*h);
    if (e.contains("error") && !result.contains("error")) result["error"] = e["error"];
  }
  return result;
}

Json relay_throughput(size_t senders, size_t per_sender, size_t size, bool batched) {
  reset_shared();
  std::vector<Pair> in(senders);
  for (auto& p : in) p = socket_pair();  // a: sender's end, b: relay's
  Pair out = socket_pair();              // a: relay's end, b: receiver's
  std::vector<int> all{out.a, out.b};
  for (auto& p : in) {
    all.push_back(p.a);
    all.push_back(p.b);
  }
  const auto close_except = [&](std::vector<int> keep) {
    for (int fd : all)
      if (std::find(keep.begin(), keep.end(), fd) == keep.end()) ::close(fd);
  };

  Helper relay = spawn_helper([&] {
    std::vector<int> keep{out.a};
    std::vector<Pair> routes;
    for (auto& p : in) {
      keep.push_back(p.b);
      routes.push_back({p.b, out.a});
    }
    close_except(keep);
    return relay_loop(routes, batched, size);
  });
  std::vector<Helper> sender_helpers;
  for (size_t s = 0; s < senders; ++s) {
    sender_helpers.push_back(spawn_helper([&, s] {
      close_except({in[s].a});
      const size_t batch = batched ? kSenderBatch : 1;
      std::vector<uint8_t> buf(size * batch);
      gate_wait();
      for (size_t i = 0; i < per_sender;) {
        const size_t n = std::min(batch, per_sender - i);
        for (size_t k = 0; k < n; ++k)
          fill_message(buf.data() + k * size, size, uint32_t(s), uint32_t(i + k));
        if (!write_all(in[s].a, buf.data(), n * size)) return Json{{"error", "sender write"}};
        i += n;
      }
      ::close(in[s].a);
      return Json{{"sent", per_sender}};
    }));
  }
  Helper receiver = spawn_helper([&] {
    close_except({out.b});
    const size_t total = senders * per_sender;
    OrderCheck order(senders);
    std::vector<uint8_t> buf(kRelayChunk + size);
    size_t have = 0, received = 0;
    uint64_t checked = 0, reads = 0;
    bool order_ok = true;
    gate_wait();
    const uint64_t t0 = now_ns();
    uint64_t t1 = t0;
    while (received < total) {
      const size_t want = batched ? kRelayChunk : size - have;
      const ssize_t n = ::read(out.b, buf.data() + have, want);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      ++reads;
      have += static_cast<size_t>(n);
      size_t at = 0;
      for (; have - at >= size; at += size) {
        uint32_t sender = 0, seq = 0;
        if (!check_message(buf.data() + at, size, &sender, &seq) || !order.accept(sender, seq))
          order_ok = false;
        else
          checked += size;
        ++received;
      }
      if (at != 0) {
        std::memmove(buf.data(), buf.data() + at, have - at);
        have -= at;
      }
      t1 = now_ns();
    }
    ::close(out.b);
    return Json{{"messages", total},      {"received", received},
                {"receive_calls", reads}, {"bytes_checked", checked},
                {"order_ok", order_ok},   {"seconds", double(t1 - t0) / 1e9}};
  });
  close_all(all);
  const bool started = gate_open(uint32_t(senders + 1));
  Json result = collect(receiver);
  uint64_t sent = 0;
  for (auto& h : sender_helpers) {
    Json r = collect(h);
    if (r.contains("error") && !result.contains("error")) result["error"] = r["error"];
    sent += r.value("sent", uint64_t{0});
  }
  Json r = collect(relay);
  if (r.contains("error") && !result.contains("error")) result["error"] = r["error"];
  if (!started && !result.contains("error")) result["error"] = "helpers did not start";
  result["sent"] = sent;
  return result;
}

Json memfd_transfer(size_t size, size_t transfers) {
  Pair p = socket_pair();
  Helper sender = spawn_helper([&] {
    ::close(p.b);
    // One more than asked: the first, untimed, warms the path up.
    for (size_t round = 0; round <= transfers; ++round) {
      const uint64_t t0 = now_ns();
      const int fd = ::memfd_create("portbench", MFD_CLOEXEC);
      if (fd < 0 || ::posix_fallocate(fd, 0, static_cast<off_t>(size)) != 0)
        return Json{{"error", "memfd_create or fallocate failed"}};
      void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
      if (map == MAP_FAILED) return Json{{"error", "mmap failed"}};
      fill_pages(static_cast<uint8_t*>(map), size, uint32_t(round));
      ::munmap(map, size);

      uint64_t header[2] = {t0, round};
      iovec iov{header, sizeof header};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
      if (::sendmsg(p.a, &msg, MSG_NOSIGNAL) != sizeof header)
        return Json{{"error", "sendmsg failed"}};
      ::close(fd);
      char ack;
      if (!read_all(p.a, &ack, 1)) return Json{{"error", "no ack"}};
    }
    ::close(p.a);
    return Json{{"sent", transfers}};
  });
  Helper receiver = spawn_helper([&] {
    ::close(p.a);
    std::vector<double> ms;
    uint64_t checked = 0;
    for (size_t round = 0; round <= transfers; ++round) {
      uint64_t header[2];
      iovec iov{header, sizeof header};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      if (::recvmsg(p.b, &msg, MSG_CMSG_CLOEXEC) != sizeof header)
        return Json{{"error", "recvmsg failed"}};
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return Json{{"error", "no fd"}};
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
      struct stat st {};
      ::fstat(fd, &st);
      const size_t n = static_cast<size_t>(st.st_size);
      void* map = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
      ::close(fd);
      if (map == MAP_FAILED) return Json{{"error", "receiver mmap failed"}};
      const uint64_t ok = check_pages(static_cast<const uint8_t*>(map), n, uint32_t(header[1]));
      ::munmap(map, n);
      const uint64_t t1 = now_ns();
      if (ok != size) return Json{{"error", "pages differ"}};
      if (round != 0) {
        checked += ok;
        ms.push_back(double(t1 - header[0]) / 1e6);
      }
      const char ack = 1;
      write_all(p.b, &ack, 1);
    }
    ::close(p.b);
    return Json{{"ms", ms}, {"bytes_checked", checked}};
  });
  close_all({p.a, p.b});
  Json result = collect(receiver);
  Json s = collect(sender);
  if (s.contains("error") && !result.contains("error")) result["error"] = s["error"];
  return result;
}

}  // namespace portbench::raw
