#include "brook/version.hpp"

namespace brook {

const char* library_version() noexcept { return BROOK_VERSION_STRING; }

}  // namespace brook
