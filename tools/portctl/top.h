// top: the busiest ports, from two `ports` listings taken an interval apart.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tools/portctl/views.h"

namespace portctl {

// One frame of `portctl top` (its --json line): the `rows` ports with the
// most messages in and out during the interval, busiest first (ties: most
// messages in all, then lowest port id). A port missing from `before` was
// created during the interval: all its traffic counts.
Json top_frame(const Json& before, const Json& after, int64_t interval_ms, int64_t now_unix_ms,
               size_t rows);

std::string top_view(const Json& frame, const ViewOptions& o);

}  // namespace portctl
