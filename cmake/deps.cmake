# cbuild_deps: the libraries cbuild_oci stands on (libarchive, OpenSSL's libcrypto, zlib, libzstd).
#
# With CBUILD_STATIC_DEPS (the default) they are linked in statically when their archives are
# installed. Why: cbuild is started once per build, and every shared library is one more file
# for the loader to open, map and relocate. After the page cache is dropped each one costs disk
# reads: libarchive alone brings eight (libxml2 and ICU among them, for formats cbuild never
# writes). Measured on a cold small build (bench S1): 19 major faults and 0.09 s shared, 8 and
# 0.06 s static. liblz4, libacl and ISA-L have no archives in Debian and stay shared.
#
# libarchive.a's pax writer calls __archive_write_entry_filetype_unsupported, which lives in
# the object that also holds the table of every write format (xar needs libxml2, which needs
# ICU's 30 MB of data). cmake/libarchive_static_shim.c defines that one function so the
# table is never linked. A probe checks the whole set links; if it does not (a newer libarchive
# that moved the function, a missing archive), the shared libraries are used, as without the
# option.
option(CBUILD_STATIC_DEPS "Link libarchive, libcrypto, zlib and libzstd statically where possible" ON)

add_library(cbuild_deps INTERFACE)
target_include_directories(cbuild_deps INTERFACE ${OPENSSL_INCLUDE_DIR} ${ZLIB_INCLUDE_DIRS} ${LibArchive_INCLUDE_DIRS}
                                                 ${ZSTD_INCLUDE_DIRS})

set(CBUILD_STATIC_DEPS_USED OFF)
if(CBUILD_STATIC_DEPS)
  set(_static_libs)
  set(_missing)
  # Static archives, and the two dependencies of libarchive.a that Debian ships shared only
  # (their runtime packages carry no unversioned .so).
  foreach(_lib archive nettle lzma bz2 zstd crypto z lz4 acl)
    if(_lib STREQUAL "lz4" OR _lib STREQUAL "acl")
      set(_names ${_lib} lib${_lib}.so.1)
    else()
      set(_names lib${_lib}.a)
    endif()
    find_library(CBUILD_DEP_${_lib} NAMES ${_names})
    if(CBUILD_DEP_${_lib})
      list(APPEND _static_libs ${CBUILD_DEP_${_lib}})
    else()
      list(APPEND _missing ${_lib})
    endif()
  endforeach()
  list(APPEND _static_libs Threads::Threads ${CMAKE_DL_LIBS})
  if(_missing)
    message(STATUS "cbuild: shared dependencies (not found: ${_missing})")
  else()
    try_compile(_static_ok ${CMAKE_BINARY_DIR}/static-deps-probe NO_CACHE
                SOURCES ${PROJECT_SOURCE_DIR}/cmake/static_deps_probe.cpp ${PROJECT_SOURCE_DIR}/cmake/libarchive_static_shim.c
                CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${LibArchive_INCLUDE_DIRS};${OPENSSL_INCLUDE_DIR}"
                LINK_LIBRARIES ${_static_libs}
                CXX_STANDARD 20
                OUTPUT_VARIABLE _probe_out)
    if(_static_ok)
      set(CBUILD_STATIC_DEPS_USED ON)
    else()
      message(STATUS "cbuild: shared dependencies (the static set does not link)")
      file(WRITE ${CMAKE_BINARY_DIR}/static-deps-probe.log "${_probe_out}")
    endif()
  endif()
endif()

if(CBUILD_STATIC_DEPS_USED)
  message(STATUS "cbuild: libarchive, libcrypto, zlib and libzstd linked statically")
  # An object, not a library member: the linker must see the definition before libarchive.a.
  add_library(cbuild_libarchive_shim OBJECT ${PROJECT_SOURCE_DIR}/cmake/libarchive_static_shim.c)
  target_include_directories(cbuild_libarchive_shim PRIVATE ${LibArchive_INCLUDE_DIRS})
  target_link_libraries(cbuild_deps INTERFACE $<TARGET_OBJECTS:cbuild_libarchive_shim> ${_static_libs})
  # $<TARGET_OBJECTS> carries no build order: without this, building one target (a bench, a
  # test binary) on a fresh tree links before the shim's object exists.
  add_dependencies(cbuild_deps cbuild_libarchive_shim)
else()
  target_link_libraries(cbuild_deps INTERFACE OpenSSL::Crypto ZLIB::ZLIB LibArchive::LibArchive PkgConfig::ZSTD
                                              Threads::Threads)
endif()

# libseccomp compiles the sandbox's system call filter (overlay/seccomp_filter.cpp). Linked
# statically under CBUILD_STATIC_DEPS when its archive is installed, for the same reason as
# above; it depends on nothing else.
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)
add_library(cbuild_seccomp INTERFACE)
target_include_directories(cbuild_seccomp INTERFACE ${SECCOMP_INCLUDE_DIRS})
if(CBUILD_STATIC_DEPS)
  find_library(CBUILD_DEP_seccomp NAMES libseccomp.a)
endif()
if(CBUILD_STATIC_DEPS AND CBUILD_DEP_seccomp)
  message(STATUS "cbuild: libseccomp linked statically")
  target_link_libraries(cbuild_seccomp INTERFACE ${CBUILD_DEP_seccomp})
else()
  target_link_libraries(cbuild_seccomp INTERFACE PkgConfig::SECCOMP)
endif()
