# package.cmake — CPack settings for the Debian package (included last from
# the top-level CMakeLists.txt, after every install() rule):
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build-deb
#   (cd build-deb && cpack -G DEB)      -> build-deb/resnetd_<version>_<arch>.deb
# The package holds the binary, the bundled models (share/resnetd/models, where
# the binary looks relative to itself), resnetd(1), resnetd.service and the
# conffile /etc/resnetd/resnetd.conf. Its Depends are computed by
# dpkg-shlibdeps from the libraries the binary links, not written by hand.
set(CPACK_PACKAGE_NAME resnetd)
set(CPACK_PACKAGE_VENDOR "resnetd")
set(CPACK_PACKAGE_CONTACT "resnetd maintainers <resnetd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ONNX image classification server (oneDNN, CPU)")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "resnetd serves ONNX image classifiers over HTTP (JSON and KServe v2 protocols,\n"
       "Prometheus metrics, graceful drain) and runs them from the command line.\n"
       "The package includes a small Fashion-MNIST model served by default, a\n"
       "sandboxed systemd unit (resnetd.service) and the resnetd(1) man page.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # resnetd_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd is optional (containers): the unit is inert without it.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/packaging/debian/conffiles ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
