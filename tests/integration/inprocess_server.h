// The daemon's Server in the test's own process, on its own thread, with
// options the portd binary does not expose (small limits, small bounds).
// Clients connect to path() over a real Unix socket, exactly as to portd;
// the daemon's log lines go to a ring buffer wait_for_log() searches.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "daemon/server/server.h"

namespace portd::testing {

class InProcessServer {
 public:
  explicit InProcessServer(server::ServerOptions options)
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)),
        previous_logger_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("inprocess", sink_);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);

    char templ[] = "/tmp/portd-inprocess-XXXXXX";
    EXPECT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/portd.sock";
    std::string error;
    auto listener = server::Listener::open(path_, &error);
    EXPECT_TRUE(listener) << error;
    if (!listener) return;
    server_ = std::make_unique<server::Server>(io_, std::move(*listener), options);
    EXPECT_TRUE(server_->start());
    thread_ = std::thread([this] { io_.run(); });
  }

  ~InProcessServer() {
    if (server_) {
      asio::post(io_, [this] { server_->stop(); });
      thread_.join();
      server_.reset();
    }
    spdlog::set_default_logger(previous_logger_);
    std::system(("rm -rf " + dir_).c_str());
  }

  const std::string& path() const { return path_; }
  // The thread the event loop runs on.
  pthread_t loop_thread() { return thread_.native_handle(); }

  bool wait_for_log(const std::string& text) {
    for (int i = 0; i < 1000; ++i) {
      for (const auto& line : sink_->last_formatted())
        if (line.find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_logger_;
  std::string dir_, path_;
  asio::io_context io_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
};

}  // namespace portd::testing
