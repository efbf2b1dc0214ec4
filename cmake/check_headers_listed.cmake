# cmake -DINCLUDE_DIR=... -DLISTED="a;b" -P check_headers_listed.cmake
# Fails when a header under INCLUDE_DIR is missing from CDC_PUBLIC_HEADERS (so it would escape the
# self-containment check) or a listed header no longer exists.
file(GLOB_RECURSE _found RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/*.hpp)
list(SORT _found)
set(_listed ${LISTED})
list(SORT _listed)
set(_missing ${_found})
list(REMOVE_ITEM _missing ${_listed})
set(_stale ${_listed})
list(REMOVE_ITEM _stale ${_found})
if(_missing OR _stale)
  message(FATAL_ERROR "CDC_PUBLIC_HEADERS (CMakeLists.txt) is out of date.\n  not listed: ${_missing}\n  listed but absent: ${_stale}")
endif()
message(STATUS "${INCLUDE_DIR}: all headers listed")
