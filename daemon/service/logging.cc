#include "daemon/service/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace portd::service {

namespace {

// "%*": the syslog priority of the record's level, as the journal reads it
// from the start of a line (sd-daemon.h's SD_DEBUG ... SD_CRIT).
class PriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char prefix[4] = {'<', priority(msg.level), '>', '\0'};
    dest.append(prefix, prefix + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }

 private:
  static char priority(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
      case spdlog::level::debug: return '7';
      case spdlog::level::info: return '6';
      case spdlog::level::warn: return '4';
      case spdlog::level::err: return '3';
      case spdlog::level::critical: return '2';
      default: return '6';
    }
  }
};

std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> sink() {
  static auto s = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  return s;
}

}  // namespace

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == static_cast<dev_t>(dev) && st.st_ino == static_cast<ino_t>(ino);
}

LogFormat effective_log_format(LogFormat format) {
  if (format != LogFormat::kAuto) return format;
  return stderr_is_journal() ? LogFormat::kJournal : LogFormat::kText;
}

void configure_logging(const std::string& level, LogFormat format) {
  auto logger = spdlog::get("portd");
  if (!logger) {
    logger = std::make_shared<spdlog::logger>("portd", sink());
    spdlog::register_logger(logger);
    spdlog::set_default_logger(logger);
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (effective_log_format(format) == LogFormat::kJournal) {
    sink()->set_color_mode(spdlog::color_mode::never);
    formatter->add_flag<PriorityFlag>('*').set_pattern("%*%v");
  } else {
    sink()->set_color_mode(spdlog::color_mode::automatic);
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(level));
}

}  // namespace portd::service
