# The demo page (server/demo/*) embedded into resnetd_server: at build time
# embed.cmake writes each file as a C byte array into demo_assets.c, rebuilt
# whenever a file changes. Users need no build step and the page needs no
# network. Included from server/CMakeLists.txt after resnetd_server exists.
set(RESNETD_DEMO_DIR ${CMAKE_CURRENT_SOURCE_DIR}/demo)
set(RESNETD_DEMO_FILES ${RESNETD_DEMO_DIR}/index.html ${RESNETD_DEMO_DIR}/app.js
    ${RESNETD_DEMO_DIR}/style.css)
set(RESNETD_DEMO_C ${CMAKE_CURRENT_BINARY_DIR}/demo_assets.c)
add_custom_command(
  OUTPUT ${RESNETD_DEMO_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${RESNETD_DEMO_C} -DDIR=${RESNETD_DEMO_DIR}
          -P ${RESNETD_DEMO_DIR}/embed.cmake
  DEPENDS ${RESNETD_DEMO_FILES} ${RESNETD_DEMO_DIR}/embed.cmake
  COMMENT "Embedding the demo page"
  VERBATIM)
target_sources(resnetd_server PRIVATE ${RESNETD_DEMO_C})
target_include_directories(resnetd_server PRIVATE ${RESNETD_DEMO_DIR})
