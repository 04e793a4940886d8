// Where the daemon listens and clients connect (DESIGN section 7).
#pragma once

#include <string>
#include <string_view>

namespace portd::proto {

// The last place looked at: the system daemon's socket (root's).
inline constexpr const char* kSystemSocketPath = "/run/portd/portd.sock";

// The socket path, resolved the same way by portd, libportd and portctl:
// an explicit path (a --socket flag) if not empty, else $PORTD_SOCKET, else
// $XDG_RUNTIME_DIR/portd.sock, else /run/portd/portd.sock.
std::string resolve_socket_path(std::string_view explicit_path = {});

}  // namespace portd::proto
