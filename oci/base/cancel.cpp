#include "oci/base/cancel.h"

#include "oci/base/error.h"

namespace cbuild {

std::atomic<int>& cancel_signal() noexcept {
  static std::atomic<int> flag{0};
  return flag;
}

void check_cancelled() {
  if (cancel_requested()) throw Error(ErrorKind::Cancelled, "interrupted");
}

}  // namespace cbuild
