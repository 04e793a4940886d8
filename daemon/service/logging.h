// Logging: spdlog to stderr, in the form the reader of stderr wants.
//
// In a terminal or a file, each line has a timestamp and a level. Under
// systemd, stderr is a stream into the journal, which stamps lines itself and
// reads a leading "<N>" as the line's syslog priority; the journal format
// writes exactly that (`<6>task 3 connected: ...`). LogFormat::kAuto picks
// the journal format when stderr is the journal: $JOURNAL_STREAM names the
// device and inode of the stream systemd connected, and stderr must still be
// that stream (a child whose stderr was redirected is not logging to it).
#pragma once

#include <string>

#include "daemon/service/config.h"

namespace portd::service {

// Whether fd 2 is the stream $JOURNAL_STREAM names.
bool stderr_is_journal();

// The format kAuto stands for here and now.
LogFormat effective_log_format(LogFormat format);

// Installs the "portd" logger on stderr as spdlog's default logger, or
// updates its level and format: called at start and on every reload.
void configure_logging(const std::string& level, LogFormat format);

}  // namespace portd::service
