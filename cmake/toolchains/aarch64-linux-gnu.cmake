# Cross build for arm64 with Debian's cross toolchain (g++-aarch64-linux-gnu) and
# multiarch libraries (:arm64 packages; scripts/setup --arm64 installs them). Tests
# run under qemu-user (qemu-aarch64-static) through CTest's emulator hook.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The arm64 loader and libraries live in /lib/aarch64-linux-gnu and
# /usr/lib/aarch64-linux-gnu (multiarch), so qemu needs no sysroot prefix.
find_program(ATTNRANK_QEMU_AARCH64 qemu-aarch64-static qemu-aarch64)
if(ATTNRANK_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ATTNRANK_QEMU_AARCH64})
endif()
# Host programs (nm, git) from the host; libraries and headers for the target only.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_NM aarch64-linux-gnu-nm)
