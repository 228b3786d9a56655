#include "oci/base/cancel.h"

#include "oci/base/error.h"

namespace cbuild {

namespace {
thread_local const CancelScope* t_scope = nullptr;
}  // namespace

std::atomic<int>& cancel_signal() noexcept {
  static std::atomic<int> flag{0};
  return flag;
}

CancelScope::CancelScope(const CancelSource* source) noexcept : source_(source), outer_(t_scope), restore_(t_scope) {
  t_scope = this;
}
CancelScope::CancelScope(const CancelSource* source, const CancelScope* outer) noexcept
    : source_(source), outer_(outer), restore_(t_scope) {
  t_scope = this;
}
CancelScope::~CancelScope() { t_scope = restore_; }

const CancelScope* CancelScope::current() noexcept { return t_scope; }

bool CancelScope::requested() const noexcept {
  for (const CancelScope* s = this; s; s = s->outer_)
    if (s->source_ && s->source_->requested()) return true;
  return false;
}

bool cancel_requested() noexcept { return interrupted() || (t_scope && t_scope->requested()); }

void check_cancelled() {
  if (interrupted()) throw Error(ErrorKind::Cancelled, "interrupted");
  if (t_scope && t_scope->requested()) throw Error(ErrorKind::Cancelled, "cancelled");
}

}  // namespace cbuild
