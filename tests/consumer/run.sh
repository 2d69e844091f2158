#!/usr/bin/env bash
# The consumer test: installs a Brook build into a prefix, as `cmake --install` does for a
# user, then builds tests/consumer/app.cpp outside the tree against it, with find_package(Brook)
# and with pkg-config, against the shared and the static library (and prefixes that hold only
# one of them), and runs each program against a real brookd: it must publish and receive.
#   run.sh BUILD_DIR BROOKD
set -euo pipefail
build=$(cd "$1" && pwd); brookd=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/brook-consumer.XXXX)
broker=""
cleanup() { [ -z "$broker" ] || kill "$broker" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cmake --install "$build" --prefix "$work/full" >/dev/null
libdir=$(dirname "$(find "$work/full" -name 'libbrook-client.so' | head -1)")
[ -n "$libdir" ] || { echo "FAIL: no libbrook-client.so installed"; exit 1; }
rel=${libdir#"$work/full/"}
for f in include/brook/client/client.hpp include/brook/client/json.hpp include/brook/protocol.hpp \
         include/brook/export.hpp include/brook/version.hpp "$rel/libbrook-client.a" \
         "$rel/pkgconfig/brook.pc" "$rel/cmake/Brook/BrookConfig.cmake" \
         "$rel/cmake/Brook/BrookConfigVersion.cmake" bin/brookd bin/brook etc/brook/brookd.toml \
         lib/systemd/system/brookd.service; do
  [ -e "$work/full/$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
# Nothing internal leaks into the public headers.
if grep -rqE '#include "brook/(codec|transport|runtime)/|flatbuffers|_generated\.h' "$work/full/include"; then
  grep -rnE '#include "brook/(codec|transport|runtime)/|flatbuffers|_generated\.h' "$work/full/include"
  echo "FAIL: a public header includes an internal one"; exit 1
fi
# (Outputs are read whole before grep -q: under pipefail, grep -q quitting at its first match
# can kill the writer with SIGPIPE and fail the pipeline, now and then.)
dynamic=$(readelf -d "$libdir/libbrook-client.so")
grep -q 'SONAME.*libbrook-client.so.0' <<<"$dynamic" \
  || { echo "FAIL: libbrook-client.so has no SONAME libbrook-client.so.0"; exit 1; }
# Only the public API is exported: no codec, transport or broker symbols.
if nm -D --defined-only -C "$libdir/libbrook-client.so" | grep -E 'brook::(codec|transport|runtime)::|Client::Impl'; then
  echo "FAIL: libbrook-client.so exports internal symbols"; exit 1
fi

# Two prefixes as a build with only one kind of library leaves them.
for layout in static-only shared-only; do cmake --install "$build" --prefix "$work/$layout" >/dev/null; done
rm -f "$work/static-only/$rel"/libbrook-client.so*
rm -f "$work/shared-only/$rel"/libbrook-client.a

"$brookd" --listen 127.0.0.1:0 --shards 1 --no-pin >"$work/brookd.log" 2>&1 & broker=$!
url=""
for _ in $(seq 100); do
  url=$(grep -oE 'tcp://[0-9.]+:[0-9]+' "$work/brookd.log" | head -1) && [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { cat "$work/brookd.log"; echo "FAIL: brookd did not start"; exit 1; }

failed=0
check() {  # NAME LINKAGE(shared|static) PREFIX PROGRAM
  local name=$1 linkage=$2 prefix=$3 program=$4 out
  local libraries
  libraries=$(ldd "$program")
  if grep -q libbrook-client <<<"$libraries"; then
    [ "$linkage" = shared ] || { echo "FAIL $name: linked libbrook-client.so, not the archive"; failed=1; return; }
  else
    [ "$linkage" = static ] || { echo "FAIL $name: not linked against libbrook-client.so"; failed=1; return; }
  fi
  if out=$(LD_LIBRARY_PATH="$prefix/$rel" timeout 20 "$program" "$url" 2>&1) \
     && [[ "$out" == "libbrook-client 0.2."*": Prices/EURUSD = 1.0842" ]]; then
    echo "ok   $name ($linkage): $out"
  else
    echo "FAIL $name ($linkage): $out"; failed=1
  fi
}
with_cmake() {  # NAME PREFIX LINKAGE [CMAKE ARGS...]
  local name=$1 prefix=$2 linkage=$3; shift 3
  cmake -S "$here" -B "$work/b-$name" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release "$@" >"$work/b-$name.log" 2>&1 \
    && cmake --build "$work/b-$name" >>"$work/b-$name.log" 2>&1 \
    || { cat "$work/b-$name.log"; echo "FAIL $name: the build failed"; failed=1; return; }
  check "$name" "$linkage" "$prefix" "$work/b-$name/brook_consumer"
}
with_pkg_config() {  # NAME PREFIX LINKAGE [PKG-CONFIG ARGS...]
  local name=$1 prefix=$2 linkage=$3; shift 3
  local flags
  flags=$(PKG_CONFIG_PATH="$prefix/$rel/pkgconfig" pkg-config "$@" --cflags --libs brook) \
    || { echo "FAIL $name: pkg-config brook"; failed=1; return; }
  # shellcheck disable=SC2086
  g++ -O2 "$here/app.cpp" -o "$work/$name" $flags 2>"$work/$name.log" \
    || { cat "$work/$name.log"; echo "FAIL $name: g++ app.cpp \$(pkg-config --cflags --libs brook) failed"; failed=1; return; }
  check "$name" "$linkage" "$prefix" "$work/$name"
}

with_cmake cmake-full "$work/full" shared
with_cmake cmake-full-static "$work/full" static -DBrook_USE_STATIC_LIBS=ON
with_cmake cmake-static-only "$work/static-only" static
with_cmake cmake-shared-only "$work/shared-only" shared
with_pkg_config pkg-config-full "$work/full" shared
with_pkg_config pkg-config-static-only "$work/static-only" static --static
# A version the package does not promise is refused.
mkdir -p "$work/wrong-version" && sed 's/Brook 0.2 REQUIRED/Brook 0.3 REQUIRED/' "$here/CMakeLists.txt" >"$work/wrong-version/CMakeLists.txt"
cp "$here/app.cpp" "$work/wrong-version/"
if cmake -S "$work/wrong-version" -B "$work/b-wrong" -DCMAKE_PREFIX_PATH="$work/full" >"$work/b-wrong.log" 2>&1; then
  echo "FAIL: find_package(Brook 0.3) accepted version $(grep -o '0\.[0-9.]*' "$work/full/$rel/cmake/Brook/BrookConfigVersion.cmake" | head -1)"; failed=1
else
  echo "ok   find_package(Brook 0.3) is refused by Brook 0.2"
fi
[ "$failed" = 0 ] && echo "consumer: every build ran against brookd" || exit 1
