#include "portd/proto/socket_path.h"

#include <cstdlib>

namespace portd::proto {

std::string resolve_socket_path(std::string_view explicit_path) {
  if (!explicit_path.empty()) return std::string(explicit_path);
  if (const char* env = std::getenv("PORTD_SOCKET"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0')
    return std::string(xdg) + "/portd.sock";
  return kSystemSocketPath;
}

}  // namespace portd::proto
