# What `cmake --install` puts in place besides the client library (runtime/client), and the
# Debian packages `tools/package` makes of it with CPack's DEB generator:
#   brookd             the broker, the brook tool, their man pages, /etc/brook/brookd.toml,
#                      the systemd unit and the brook system user
#   libbrook-client0   libbrook-client.so.0, the runtime library
#   libbrook-dev       headers, libbrook-client.a and .so, the CMake package, brook.pc
set(BROOK_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

install(TARGETS brookd brook RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT brookd)
# /etc/brook for a system install (prefix /usr, as the packages are built), PREFIX/etc/brook
# for any other prefix, including one given to `cmake --install --prefix` later.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(BROOK_CONFIG_DESTINATION /etc/brook)
else()
  set(BROOK_CONFIG_DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/brook)
endif()
install(FILES ${BROOK_PACKAGING_DIR}/brookd.toml DESTINATION ${BROOK_CONFIG_DESTINATION} COMPONENT brookd)
install(FILES ${BROOK_PACKAGING_DIR}/brookd.service DESTINATION lib/systemd/system COMPONENT brookd)

# Man pages, from the programs' own --help (help2man), so they cannot drift from the CLI.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(BROOK_MAN_DIR ${CMAKE_CURRENT_BINARY_DIR}/man)
  set(BROOK_MAN_PAGES)
  macro(brook_man_page page program help_option description)
    add_custom_command(OUTPUT ${BROOK_MAN_DIR}/${page}.1
      COMMAND ${CMAKE_COMMAND} -E make_directory ${BROOK_MAN_DIR}
      COMMAND ${HELP2MAN} --no-info --section=1 --name=${description}
              "--help-option=${help_option}" --version-option=--version
              --output=${BROOK_MAN_DIR}/${page}.1 $<TARGET_FILE:${program}>
      DEPENDS ${program}
      COMMENT "help2man: ${page}.1" VERBATIM)
    list(APPEND BROOK_MAN_PAGES ${BROOK_MAN_DIR}/${page}.1)
  endmacro()
  brook_man_page(brookd brookd --help "the Brook pub/sub broker")
  brook_man_page(brook brook --help "publish, subscribe and measure against a Brook broker")
  brook_man_page(brook-sub brook "sub --help" "brook sub: subscribe and print every value")
  brook_man_page(brook-pub brook "pub --help" "brook pub: publish values, each acknowledged")
  brook_man_page(brook-req brook "req --help" "brook req: send requests and print the answers")
  brook_man_page(brook-reply brook "reply --help" "brook reply: answer the requests to an endpoint")
  brook_man_page(brook-ping brook "ping --help" "brook ping: measure round trips to the broker")
  brook_man_page(brook-demo brook "demo --help" "brook demo: a sports-odds feed")
  brook_man_page(brook-bench brook "bench --help" "brook bench: the end-to-end load generator")
  brook_man_page(brook-passwd brook "passwd --help" "brook passwd: add or replace the password of a principal")
  add_custom_target(man_pages ALL DEPENDS ${BROOK_MAN_PAGES})
  install(FILES ${BROOK_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT brookd)
else()
  message(STATUS "help2man not found (apt install help2man): no man pages")
endif()

# Debian packages (tools/package): one per component, with dependencies found by
# dpkg-shlibdeps and the ones between Brook's own packages pinned to this version.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME brook)
set(CPACK_PACKAGE_VENDOR "Brook")
set(CPACK_PACKAGE_CONTACT "Brook developers <brook@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL brookd client dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)

set(CPACK_DEBIAN_BROOKD_PACKAGE_NAME brookd)
# A description's first line is the package's synopsis; CPack indents the others.
set(CPACK_DEBIAN_BROOKD_DESCRIPTION "Brook low-latency pub/sub broker (brookd) and its command-line tool
A thread-per-core publish/subscribe broker for price and odds feeds: io_uring networking,
shared memory for co-located clients, delta-encoded updates, and sessions that survive
dropped connections without losing an update. Includes the brook tool (sub, pub, req,
reply, ping, bench), a systemd unit and /etc/brook/brookd.toml.")
set(CPACK_DEBIAN_BROOKD_PACKAGE_SECTION net)
set(CPACK_DEBIAN_BROOKD_PACKAGE_CONTROL_EXTRA
    ${BROOK_PACKAGING_DIR}/debian/conffiles ${BROOK_PACKAGING_DIR}/debian/postinst
    ${BROOK_PACKAGING_DIR}/debian/prerm ${BROOK_PACKAGING_DIR}/debian/postrm)
set(CPACK_DEBIAN_BROOKD_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_CLIENT_PACKAGE_NAME libbrook-client0)
set(CPACK_DEBIAN_CLIENT_DESCRIPTION "Brook client library
libbrook-client connects an application to a Brook broker over TCP or shared memory:
sessions that survive dropped connections, subscriptions with deltas applied and checked,
request/response, and a fail-safe (optionally persistent) queue.")
set(CPACK_DEBIAN_CLIENT_PACKAGE_SECTION libs)
# A shlibs file, so that packages built against it depend on it by dpkg-shlibdeps as well.
set(CPACK_DEBIAN_CLIENT_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_CLIENT_PACKAGE_GENERATE_SHLIBS_POLICY ">=")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libbrook-dev)
set(CPACK_DEBIAN_DEV_DESCRIPTION "Brook client library: development files
Headers under brook/, the static library, a CMake package (find_package(Brook) gives
Brook::client) and a pkg-config file (brook.pc).")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DEPENDS client)
# What the headers and the static library's link need.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "liburing-dev, libxxhash-dev, libtomlplusplus-dev, libssl-dev, nlohmann-json3-dev, pkgconf | pkg-config")
include(CPack)
