# Cross-compiling mure_node for aarch64 (Debian arm64) with Debian's g++-aarch64-linux-gnu and the
# sysroot that scripts/cross_aarch64 unpacks from Debian's arm64 packages (build-aarch64/sysroot,
# or -DMURE_AARCH64_SYSROOT=...). Only the node: configure with -DMURE_BUILD_TESTS=OFF.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT MURE_AARCH64_SYSROOT)
  set(MURE_AARCH64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build-aarch64/sysroot")
endif()
get_filename_component(MURE_AARCH64_SYSROOT "${MURE_AARCH64_SYSROOT}" ABSOLUTE)
set(MURE_AARCH64_SYSROOT "${MURE_AARCH64_SYSROOT}" CACHE PATH "arm64 sysroot (scripts/cross_aarch64)")
set(CMAKE_SYSROOT "${MURE_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${MURE_AARCH64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # host tools (erl, pkg-config) run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (FFTW) reads the sysroot's .pc files and prefixes their paths with it.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${MURE_AARCH64_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${MURE_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${MURE_AARCH64_SYSROOT}/usr/share/pkgconfig")

# erl_interface of the arm64 Erlang (the host's erl would name the host's x86-64 one).
file(GLOB _mure_ei_dirs "${MURE_AARCH64_SYSROOT}/usr/lib/erlang/lib/erl_interface-*")
if(_mure_ei_dirs)
  list(GET _mure_ei_dirs 0 _mure_ei_dir)
  set(MURE_EI_DIR "${_mure_ei_dir}" CACHE PATH "erl_interface directory")
endif()
