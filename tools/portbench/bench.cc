#include "tools/portbench/bench.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <numeric>
#include <thread>

namespace portbench {

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Summary summarize(std::vector<double>& values) {
  Summary s;
  s.samples = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::min(values.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.median = rank(0.5);
  s.p90 = rank(0.9);
  s.p99 = rank(0.99);
  s.min = values.front();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  return s;
}

Json to_json(const Summary& s, const char* unit) {
  return Json{{"unit", unit}, {"samples", s.samples}, {"median", s.median}, {"p90", s.p90},
              {"p99", s.p99}, {"min", s.min},         {"mean", s.mean}};
}

// ---------------------------------------------------------------------------
// Helper processes

namespace {
Shared* g_shared = nullptr;
int g_pin_cpu = -1;
}  // namespace

void set_pin_cpu(int cpu) { g_pin_cpu = cpu; }
int pin_cpu() { return g_pin_cpu; }

void apply_pin() {
  if (g_pin_cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(g_pin_cpu, &set);
  ::sched_setaffinity(0, sizeof set, &set);
}

Shared& shared() {
  if (g_shared == nullptr) {
    void* p =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::perror("portbench: mmap");
      std::exit(1);
    }
    g_shared = new (p) Shared;
  }
  return *g_shared;
}

void reset_shared() {
  shared().ready.store(0);
  shared().go.store(0);
  shared().stop.store(0);
}

void gate_wait() {
  shared().ready.fetch_add(1);
  while (shared().go.load() == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
}

bool gate_open(uint32_t n, int timeout_ms) {
  const uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000ull;
  while (shared().ready.load() < n) {
    if (now_ns() > deadline) {
      shared().go.store(1);  // let those that did arrive finish (they will fail)
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  shared().go.store(1);
  return true;
}

Helper spawn_helper(const std::function<Json()>& body) {
  shared();  // mapped before the fork
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("portbench: pipe");
    std::exit(1);
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("portbench: fork");
    std::exit(1);
  }
  if (pid == 0) {
    ::close(fds[0]);
    apply_pin();
    Json report;
    try {
      report = body();
    } catch (const std::exception& e) {
      report = Json{{"error", std::string("exception: ") + e.what()}};
    }
    const std::string text = report.dump();
    write_all(fds[1], text.data(), text.size());
    ::close(fds[1]);
    std::fflush(nullptr);
    ::_exit(0);
  }
  ::close(fds[1]);
  return Helper{pid, fds[0]};
}

Json collect(Helper& helper) {
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(helper.report_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(helper.report_fd);
  helper.report_fd = -1;
  int status = 0;
  while (::waitpid(helper.pid, &status, 0) < 0 && errno == EINTR) {
  }
  helper.pid = -1;
  if (text.empty()) {
    return Json{{"error", WIFSIGNALED(status)
                              ? "helper killed by signal " + std::to_string(WTERMSIG(status))
                              : "helper wrote no report"}};
  }
  Json report = Json::parse(text, nullptr, false);
  if (report.is_discarded()) return Json{{"error", "helper wrote a malformed report"}};
  return report;
}

// ---------------------------------------------------------------------------
// Messages and pages

namespace {
inline uint8_t pattern_byte(uint32_t a, uint32_t b, size_t k) {
  return static_cast<uint8_t>(a * 131u + b * 7u + static_cast<uint32_t>(k) * 13u + 1u);
}
}  // namespace

void fill_message(uint8_t* out, size_t size, uint32_t sender, uint32_t seq) {
  std::memcpy(out, &sender, 4);
  std::memcpy(out + 4, &seq, 4);
  for (size_t k = 8; k < size; ++k) out[k] = pattern_byte(sender, seq, k);
}

bool check_message(const uint8_t* in, size_t size, uint32_t* sender, uint32_t* seq) {
  if (size < 8) return false;
  std::memcpy(sender, in, 4);
  std::memcpy(seq, in + 4, 4);
  for (size_t k = 8; k < size; ++k)
    if (in[k] != pattern_byte(*sender, *seq, k)) return false;
  return true;
}

void fill_pages(uint8_t* data, size_t size, uint32_t round) {
  // Every byte is written, as a real producer would.
  for (size_t off = 0; off < size; off += 4096) {
    const size_t n = std::min<size_t>(4096, size - off);
    std::memset(data + off, static_cast<int>(pattern_byte(round, uint32_t(off >> 12), 0)), n);
  }
}

uint64_t check_pages(const uint8_t* data, size_t size, uint32_t round) {
  // One byte per page: touching every page is what the receiver pays.
  for (size_t off = 0; off < size; off += 4096)
    if (data[off] != pattern_byte(round, uint32_t(off >> 12), 0)) return 0;
  if (size > 0 && data[size - 1] != pattern_byte(round, uint32_t((size - 1) >> 12), 0)) return 0;
  return size;
}

// ---------------------------------------------------------------------------
// Resources and I/O

void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

uint64_t rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

bool write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace portbench
