#include "tools/portbench/runs.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "portd/portd.h"

namespace portbench::runs {

namespace {

using namespace std::chrono_literals;
using portd::Disposition;
using portd::OutgoingMessage;
using portd::Status;
using TaskPtr = std::shared_ptr<portd::Task>;

// Message ids of the benchmark's own protocol.
constexpr int32_t kRequestId = 1000;
constexpr int32_t kStopId = 1999;

std::string error_text(const std::string& what, Status status, const std::string& detail = {}) {
  std::string s = what + ": " + std::string(portd::status_name(status));
  if (!detail.empty()) s += " (" + detail + ")";
  return s;
}

// A service name unique to this run and this use.
std::string service_name(const char* what) {
  static std::atomic<uint32_t> counter{0};
  return "portbench." + std::string(what) + "." + std::to_string(::getppid()) + "." +
         std::to_string(::getpid()) + "." + std::to_string(counter++);
}

TaskPtr connect_or_throw(const std::string& socket, uint32_t protocol_version = 0) {
  portd::ConnectOptions options;
  options.socket_path = socket;
  options.protocol_version = protocol_version;
  options.command = "portbench";
  auto task = portd::Task::connect(options);
  if (!task) throw std::runtime_error(error_text("connect", task.status(), task.detail()));
  return *task;
}

std::span<const std::byte> as_bytes(const std::vector<uint8_t>& v) {
  return std::as_bytes(std::span<const uint8_t>(v));
}

// The echo server of the RPC scenarios: answers each request with its bytes
// (reply and next receive in one send_receive) until a stop message.
Json serve_echo(const std::string& socket, const std::string& service) {
  TaskPtr task = connect_or_throw(socket);
  auto port = task->check_in(service);
  if (!port) return Json{{"error", error_text("check_in", port.status())}};
  auto request = port->receive();
  uint64_t served = 0;
  for (;;) {
    if (!request) return Json{{"error", error_text("server receive", request.status())}};
    if (request->id == kStopId) break;
    OutgoingMessage reply;
    reply.set_remote(request->remote, Disposition::kMoveSendOnce).set_id(request->id + 100);
    reply.body() = std::move(request->body);
    request = task->send_receive(reply, {}, port->name(), {});
    ++served;
  }
  return Json{{"served", served}};
}

void send_stop(const TaskPtr& task, const portd::SendRight& server) {
  OutgoingMessage stop;
  stop.set_remote(server).set_id(kStopId);
  (void)task->send(stop);
}

}  // namespace

// ---------------------------------------------------------------------------
// RPC

Json rpc(const std::string& socket, size_t size, size_t iters) {
  const std::string service = service_name("rpc");
  Helper server = spawn_helper([&] { return serve_echo(socket, service); });
  Helper client = spawn_helper([&]() -> Json {
    TaskPtr task = connect_or_throw(socket);
    auto server_port = task->look_up(service, 30000ms);
    if (!server_port) return Json{{"error", error_text("look_up", server_port.status())}};
    auto reply_port = task->make_port();
    if (!reply_port) return Json{{"error", error_text("make_port", reply_port.status())}};
    std::vector<uint8_t> body(size);
    std::vector<double> us;
    us.reserve(iters);
    const size_t warmup = std::min<size_t>(iters / 10 + 1, 200);
    uint64_t checked = 0;
    for (size_t i = 0; i < warmup + iters; ++i) {
      fill_message(body.data(), size, 0, static_cast<uint32_t>(i));
      const uint64_t t0 = now_ns();
      OutgoingMessage request;
      request.set_remote(*server_port).set_id(kRequestId).set_body(as_bytes(body));
      auto reply = task->rpc(request, *reply_port);
      const uint64_t t1 = now_ns();
      if (!reply) return Json{{"error", error_text("rpc", reply.status())}};
      if (reply->id != kRequestId + 100 || reply->body.size() != size ||
          std::memcmp(reply->body.data(), body.data(), size) != 0)
        return Json{{"error", "rpc reply differs from the request"}};
      if (i >= warmup) {
        us.push_back(double(t1 - t0) / 1000.0);
        checked += size;
      }
    }
    send_stop(task, *server_port);
    return Json{{"us", us}, {"bytes_checked", checked}};
  });
  Json result = collect(client);
  Json s = collect(server);
  if (s.contains("error") && !result.contains("error")) result["error"] = s["error"];
  return result;
}

// ---------------------------------------------------------------------------
// One-way throughput

Json oneway(const std::string& socket, size_t senders, size_t per_sender, size_t size,
            bool port_set, size_t batch, bool pipelined, size_t receive_max) {
  const size_t per_receive = receive_max != 0 ? receive_max : batch;
  const uint32_t version = pipelined ? 1 : 0;
  reset_shared();
  const std::string service = service_name("oneway");
  const auto member_service = [&](size_t i) {
    return port_set ? service + "." + std::to_string(i) : service;
  };
  Helper receiver = spawn_helper([&]() -> Json {
    TaskPtr task = connect_or_throw(socket, version);
    portd::Name receive_name = portd::kNameNull;
    std::vector<portd::ReceiveRight> ports;
    portd::PortSet set;
    for (size_t i = 0; i < (port_set ? senders : 1); ++i) {
      auto port = task->check_in(member_service(i));
      if (!port) return Json{{"error", error_text("check_in", port.status())}};
      if (Status s = port->set_qlimit(portd::kQueueLimitMax); !ok(s))
        return Json{{"error", error_text("set_qlimit", s)}};
      ports.push_back(std::move(*port));
    }
    if (port_set) {
      auto made = task->make_port_set();
      if (!made) return Json{{"error", error_text("make_port_set", made.status())}};
      set = std::move(*made);
      for (auto& p : ports)
        if (Status s = set.insert(p); !ok(s)) return Json{{"error", error_text("insert", s)}};
      receive_name = set.name();
    } else {
      receive_name = ports[0].name();
    }
    const size_t total = senders * per_sender;
    OrderCheck order(senders);
    uint64_t checked = 0;
    size_t received = 0;
    uint64_t calls = 0;  // receive or receive_batch calls
    bool order_ok = true;
    const auto take = [&](const portd::ReceivedMessage& m) {
      uint32_t sender = 0, seq = 0;
      const auto* bytes = reinterpret_cast<const uint8_t*>(m.body.data());
      if (m.body.size() != size || !check_message(bytes, size, &sender, &seq) ||
          !order.accept(sender, seq))
        order_ok = false;
      else
        checked += size;
      ++received;
    };
    gate_wait();
    const uint64_t t0 = now_ns();
    while (received < total) {
      ++calls;
      if (per_receive > 1) {
        auto got = task->receive_batch(receive_name, std::min(per_receive, total - received));
        if (!got) return Json{{"error", error_text("receive_batch", got.status())}};
        for (const auto& m : *got) take(m);
      } else {
        auto m = task->receive(receive_name);
        if (!m) return Json{{"error", error_text("receive", m.status())}};
        take(*m);
      }
    }
    const uint64_t t1 = now_ns();
    return Json{{"messages", total},      {"received", received},
                {"receive_calls", calls}, {"bytes_checked", checked},
                {"order_ok", order_ok},   {"seconds", double(t1 - t0) / 1e9}};
  });
  std::vector<Helper> sender_helpers;
  for (size_t s = 0; s < senders; ++s) {
    sender_helpers.push_back(spawn_helper([&, s]() -> Json {
      TaskPtr task = connect_or_throw(socket, version);
      auto port = task->look_up(member_service(s), 30000ms);
      if (!port) return Json{{"error", error_text("look_up", port.status())}};
      std::vector<uint8_t> body(size);
      std::vector<OutgoingMessage> messages(std::max<size_t>(batch, 1));
      gate_wait();
      for (size_t i = 0; i < per_sender;) {
        const size_t n = std::min(std::max<size_t>(batch, 1), per_sender - i);
        for (size_t k = 0; k < n; ++k) {
          fill_message(body.data(), size, uint32_t(s), uint32_t(i + k));
          messages[k].set_remote(*port).set_id(kRequestId).set_body(as_bytes(body));
        }
        if (batch > 1) {
          auto statuses = task->send_batch(std::span<OutgoingMessage>(messages.data(), n));
          for (Status st : statuses)
            if (!ok(st)) return Json{{"error", error_text("send_batch", st)}};
        } else if (Status st = task->send(messages[0]); !ok(st)) {
          return Json{{"error", error_text("send", st)}};
        }
        i += n;
      }
      return Json{{"sent", per_sender}};
    }));
  }
  const bool started = gate_open(uint32_t(senders + 1));
  Json result = collect(receiver);
  uint64_t sent = 0;
  for (auto& h : sender_helpers) {
    Json r = collect(h);
    if (r.contains("error") && !result.contains("error")) result["error"] = r["error"];
    sent += r.value("sent", uint64_t{0});
  }
  if (!started && !result.contains("error")) result["error"] = "helpers did not start";
  result["sent"] = sent;
  return result;
}

// ---------------------------------------------------------------------------
// Out-of-line transfer

Json ool(const std::string& socket, const std::string& mode, size_t size, size_t transfers) {
  const std::string service = service_name("ool");
  Helper receiver = spawn_helper([&]() -> Json {
    TaskPtr task = connect_or_throw(socket);
    auto port = task->check_in(service);
    if (!port) return Json{{"error", error_text("check_in", port.status())}};
    std::vector<double> ms;
    uint64_t checked = 0;
    auto m = port->receive();
    for (;;) {
      if (!m) return Json{{"error", error_text("receive", m.status())}};
      if (m->id == kStopId) break;
      uint64_t header[2] = {0, 0};
      if (m->body.size() != sizeof header || m->descriptors.size() != 1 ||
          !std::holds_alternative<portd::ReceivedOolMemory>(m->descriptors[0]))
        return Json{{"error", "transfer message malformed"}};
      std::memcpy(header, m->body.data(), sizeof header);
      {
        auto& region = std::get<portd::ReceivedOolMemory>(m->descriptors[0]);
        const auto bytes = region.bytes();
        const uint64_t ok_bytes = bytes.size() == size
                                      ? check_pages(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                    size, uint32_t(header[1]))
                                      : 0;
        region.memory.reset();  // unmapped (a volatile segment goes back)
        if (ok_bytes != size) return Json{{"error", "received pages differ"}};
        checked += ok_bytes;
      }
      const uint64_t t1 = now_ns();
      if (header[1] != 0) {  // transfer 0 warms up (a volatile segment is made)
        ms.push_back(double(t1 - header[0]) / 1e6);
      } else {
        checked -= size;  // not counted: untimed
      }
      OutgoingMessage ack;
      ack.set_remote(m->remote, Disposition::kMoveSendOnce).set_id(kRequestId + 100);
      m = task->send_receive(ack, {}, port->name(), {});
    }
    return Json{{"ms", ms}, {"bytes_checked", checked}};
  });
  Helper sender = spawn_helper([&]() -> Json {
    TaskPtr task = connect_or_throw(socket);
    auto port = task->look_up(service, 30000ms);
    if (!port) return Json{{"error", error_text("look_up", port.status())}};
    auto reply_port = task->make_port();
    if (!reply_port) return Json{{"error", error_text("make_port", reply_port.status())}};
    std::vector<uint8_t> source;
    if (mode == "copy") source.resize(size);
    // One more than asked: the first, untimed, warms the path up (for volatile
    // mode it makes the pool's segment, which later transfers reuse).
    for (size_t round = 0; round <= transfers; ++round) {
      OutgoingMessage message;
      if (mode == "copy") {
        // The caller's own bytes, written before the clock starts: copy
        // mode's cost is the copy into a fresh memfd.
        fill_pages(source.data(), size, uint32_t(round));
      }
      const uint64_t t0 = now_ns();
      if (mode == "copy") {
        message.add_ool_copy(as_bytes(source));
      } else if (mode == "move") {
        auto buffer = portd::SharedBuffer::allocate(size);
        if (!buffer) return Json{{"error", error_text("SharedBuffer::allocate", buffer.status())}};
        fill_pages(reinterpret_cast<uint8_t*>(buffer->data()), size, uint32_t(round));
        message.add_ool_move(std::move(*buffer));
      } else {
        auto buffer = task->volatile_buffer(size);
        if (!buffer) return Json{{"error", error_text("volatile_buffer", buffer.status())}};
        fill_pages(reinterpret_cast<uint8_t*>(buffer->data()), size, uint32_t(round));
        message.add_ool_volatile(std::move(*buffer));
      }
      const uint64_t header[2] = {t0, round};
      message.set_remote(*port)
          .set_id(kRequestId)
          .set_body(std::as_bytes(std::span<const uint64_t>(header, 2)));
      auto ack = task->rpc(message, *reply_port);
      if (!ack) return Json{{"error", error_text("rpc", ack.status())}};
    }
    send_stop(task, *port);
    return Json{{"sent", transfers + 1}};
  });
  Json result = collect(receiver);
  Json s = collect(sender);
  if (s.contains("error") && !result.contains("error")) result["error"] = s["error"];
  return result;
}

// ---------------------------------------------------------------------------
// Scale

namespace {

// `ops` operations on random ports of `ports`: send 64 bytes (COPY_SEND),
// receive it. Per-operation time in microseconds.
Json measure_ops(const TaskPtr& task, const std::vector<portd::Name>& ports, size_t ops,
                 std::mt19937& rng) {
  std::vector<uint8_t> body(64);
  std::vector<double> us;
  us.reserve(ops);
  uint64_t checked = 0;
  std::uniform_int_distribution<size_t> pick(0, ports.size() - 1);
  for (size_t i = 0; i < ops; ++i) {
    const portd::Name name = ports[pick(rng)];
    fill_message(body.data(), body.size(), 0, uint32_t(i));
    const uint64_t t0 = now_ns();
    OutgoingMessage m;
    m.set_remote(name, Disposition::kCopySend).set_id(kRequestId).set_body(as_bytes(body));
    if (Status s = task->send(m); !ok(s)) return Json{{"error", error_text("send", s)}};
    portd::ReceiveOptions now;
    now.timeout = 0ms;
    auto got = task->receive(name, now);
    const uint64_t t1 = now_ns();
    if (!got) return Json{{"error", error_text("receive", got.status())}};
    if (got->body.size() != body.size() ||
        std::memcmp(got->body.data(), body.data(), body.size()) != 0)
      return Json{{"error", "received body differs"}};
    checked += body.size();
    us.push_back(double(t1 - t0) / 1000.0);
  }
  return Json{{"us", us}, {"bytes_checked", checked}};
}

}  // namespace

Json scale(const std::string& socket, size_t small_ports, size_t ports, size_t tasks, size_t ops,
           size_t rounds) {
  Helper h = spawn_helper([&]() -> Json {
    raise_fd_limit();
    TaskPtr task = connect_or_throw(socket);
    const pid_t daemon = static_cast<pid_t>(task->daemon_pid());
    std::vector<portd::Name> names;
    const auto grow = [&](size_t n) -> std::string {
      while (names.size() < n) {
        auto name = task->allocate(portd::Right::kReceive);
        if (!name) return error_text("allocate", name.status(), name.detail());
        if (Status s = task->insert_right(*name, *name, Disposition::kMakeSend); !ok(s))
          return error_text("insert_right", s);
        names.push_back(*name);
      }
      return {};
    };
    // Back to the small state: the added ports destroyed (with their send
    // rights), the other tasks disconnected.
    const auto shrink = [&](std::vector<TaskPtr>& others) -> std::string {
      while (names.size() > small_ports) {
        if (Status s = task->destroy(names.back()); !ok(s)) return error_text("destroy", s);
        names.pop_back();
      }
      for (auto& t : others) t->disconnect();
      others.clear();
      return {};
    };
    std::mt19937 rng(12345);
    const size_t per_round = std::max<size_t>(1, ops / rounds);
    // Each round measures the small state, then the large one, then goes
    // back: a change in the machine's load hits both series alike. Memory is
    // measured in the first round.
    Json small_us = Json::array(), large_us = Json::array();
    uint64_t small_checked = 0, large_checked = 0;
    uint64_t rss0 = 0, rss1 = 0, rss2 = 0;
    size_t tasks_connected = 0, ports_held = 0;
    for (size_t r = 0; r < rounds; ++r) {
      if (auto e = grow(small_ports); !e.empty()) return Json{{"error", e}};
      Json small = measure_ops(task, names, per_round, rng);
      if (small.contains("error")) return small;
      if (r == 0) rss0 = rss_bytes(daemon);
      if (auto e = grow(ports); !e.empty()) return Json{{"error", e}};
      if (r == 0) rss1 = rss_bytes(daemon);
      std::vector<TaskPtr> others;
      for (size_t i = 0; i < tasks; ++i) {
        portd::ConnectOptions options;
        options.socket_path = socket;
        options.command = "portbench-idle";
        auto t = portd::Task::connect(options);
        if (!t)
          return Json{
              {"error", error_text("connect task " + std::to_string(i), t.status(), t.detail())}};
        others.push_back(std::move(*t));
      }
      if (r == 0) rss2 = rss_bytes(daemon);
      Json large = measure_ops(task, names, per_round, rng);
      if (large.contains("error")) return large;
      tasks_connected = others.size() + 1;
      ports_held = names.size();
      for (const auto& v : small["us"]) small_us.push_back(v);
      for (const auto& v : large["us"]) large_us.push_back(v);
      small_checked += small.value("bytes_checked", uint64_t{0});
      large_checked += large.value("bytes_checked", uint64_t{0});
      if (r + 1 < rounds)
        if (auto e = shrink(others); !e.empty()) return Json{{"error", e}};
    }
    const size_t added_ports = ports - small_ports;
    return Json{
        {"small", Json{{"us", small_us}, {"bytes_checked", small_checked}}},
        {"large", Json{{"us", large_us}, {"bytes_checked", large_checked}}},
        {"rounds", rounds},
        {"ports", ports_held},
        {"tasks", tasks_connected},
        {"daemon_rss_bytes", rss2},
        {"bytes_per_port",
         added_ports ? double(rss1 - std::min(rss0, rss1)) / double(added_ports) : 0.0},
        {"bytes_per_task", tasks ? double(rss2 - std::min(rss1, rss2)) / double(tasks) : 0.0},
        {"bytes_checked", small_checked + large_checked}};
  });
  return collect(h);
}

// ---------------------------------------------------------------------------
// Isolation

namespace {

// The hostile client: fills many queues, then sends 1 MiB frames and
// refused sends as fast as it can until told to stop.
Json flood(const std::string& socket, size_t flood_ports) {
  TaskPtr task = connect_or_throw(socket);
  std::vector<portd::Name> full;
  std::vector<uint8_t> small(1024);
  portd::SendOptions now;
  now.timeout = 0ms;
  uint64_t queued = 0;
  for (size_t i = 0; i < flood_ports; ++i) {
    auto name = task->allocate(portd::Right::kReceive);
    if (!name) return Json{{"error", error_text("flood allocate", name.status())}};
    (void)task->insert_right(*name, *name, Disposition::kMakeSend);
    for (;;) {
      OutgoingMessage m;
      m.set_remote(*name, Disposition::kCopySend).set_body(as_bytes(small));
      if (!ok(task->send(m, now))) break;  // full
      ++queued;
    }
    full.push_back(*name);
  }
  auto big_port = task->allocate(portd::Right::kReceive);
  if (!big_port) return Json{{"error", error_text("flood allocate", big_port.status())}};
  (void)task->insert_right(*big_port, *big_port, Disposition::kMakeSend);
  const size_t big = std::min<size_t>(task->max_inline_body(), 1u << 20);
  std::vector<uint8_t> huge(big, 0x5a);
  task->set_ool_threshold(big);  // inline: huge frames through the socket
  shared().ready.fetch_add(1);   // flooding from now on

  std::atomic<uint64_t> ops{0};
  const auto loop = [&](unsigned seed) {
    std::mt19937 rng(seed);
    portd::ReceiveOptions rnow;
    rnow.timeout = 0ms;
    while (shared().stop.load() == 0) {
      OutgoingMessage m;
      m.set_remote(*big_port, Disposition::kCopySend).set_body(as_bytes(huge));
      (void)task->send(m, now);
      (void)task->receive(*big_port, rnow);
      OutgoingMessage refused;
      refused.set_remote(full[rng() % full.size()], Disposition::kCopySend)
          .set_body(as_bytes(small));
      (void)task->send(refused, now);
      ops.fetch_add(3);
    }
  };
  std::thread second(loop, 2u);
  loop(1u);
  second.join();
  return Json{{"queued", queued}, {"operations", ops.load()}};
}

}  // namespace

// The control: two threads that only burn CPU, as the flooder's two do,
// and never talk to the daemon. What they cost the round trip is the
// machine's share, not the daemon's.
Json burn() {
  shared().ready.fetch_add(1);
  std::atomic<uint64_t> spins{0};
  const auto loop = [&] {
    uint64_t n = 0;
    while (shared().stop.load(std::memory_order_relaxed) == 0) ++n;
    spins.fetch_add(n);
  };
  std::thread second(loop);
  loop();
  second.join();
  return Json{{"spins", spins.load()}};
}

int noise_cpu() {
  const int victim = pin_cpu();
  if (victim < 0) return -1;
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus > 1 ? static_cast<int>((static_cast<unsigned>(victim) + 1) % cpus) : victim;
}

namespace {

// A helper that runs on the noise CPU (see isolation()).
Helper spawn_noise(const std::function<Json()>& body) {
  const int victim = pin_cpu();
  set_pin_cpu(noise_cpu());
  Helper h = spawn_helper(body);
  set_pin_cpu(victim);
  return h;
}

}  // namespace

Json isolation(const std::string& socket, size_t iters, size_t flood_ports) {
  reset_shared();
  Json quiet = rpc(socket, 64, iters);
  if (quiet.contains("error")) return quiet;

  Helper burner = spawn_noise([] { return burn(); });
  while (shared().ready.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Json loaded = rpc(socket, 64, iters);
  shared().stop.store(1);
  collect(burner);
  if (loaded.contains("error")) return loaded;
  reset_shared();

  Helper flooder = spawn_noise([&] { return flood(socket, flood_ports); });
  const uint64_t deadline = now_ns() + 120ull * 1000000000ull;
  while (shared().ready.load() == 0 && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Json flooded = shared().ready.load() != 0 ? rpc(socket, 64, iters)
                                            : Json{{"error", "the flooder did not start"}};
  shared().stop.store(1);
  Json f = collect(flooder);
  Json result{{"quiet", quiet}, {"cpu_loaded", loaded}, {"flooded", flooded}, {"flooder", f}};
  if (flooded.contains("error")) result["error"] = flooded["error"];
  if (f.contains("error") && !result.contains("error")) result["error"] = f["error"];
  return result;
}

}  // namespace portbench::runs
