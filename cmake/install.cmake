# Install rules: the library, its headers and the pkg-config files.
#
# Kept minimal and in one place on purpose; the packaging work (CMake package
# config, the daemon, unit files) builds on this file.
#
#   lib/libportd.so*                       the library (C++ API and Mach C API)
#   include/portd/...                      the C++ API (<portd/portd.h>)
#   include/portd-mach/{mach,servers}/...  the Mach headers (<mach/mach.h>)
#   lib/pkgconfig/portd.pc, portd-mach.pc  relocatable (prefix from ${pcfiledir})

install(TARGETS portd_client
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/libclient/include/portd
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/proto/include/portd/status.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/portd)
install(FILES ${PROJECT_SOURCE_DIR}/proto/include/portd/proto/unique_fd.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/portd/proto)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/libclient/mach/include/mach
                  ${PROJECT_SOURCE_DIR}/libclient/mach/include/servers
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/portd-mach FILES_MATCHING PATTERN "*.h")

# From <libdir>/pkgconfig back up to the prefix, so the .pc files work
# wherever the tree is installed (cmake --install --prefix, DESTDIR).
file(RELATIVE_PATH PORTD_PC_TO_PREFIX
  "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
foreach(pc portd portd-mach)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
