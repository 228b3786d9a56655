#include "oci/chain_id.h"

namespace cbuild::oci {

Digest chain_id(const std::optional<Digest>& parent, const Digest& diff_id) {
  if (!parent) return diff_id;
  return Digest::of(parent->str() + " " + diff_id.str());
}

std::vector<Digest> chain_ids(const std::vector<Digest>& diff_ids) {
  std::vector<Digest> out;
  out.reserve(diff_ids.size());
  std::optional<Digest> parent;
  for (auto& d : diff_ids) {
    parent = chain_id(parent, d);
    out.push_back(*parent);
  }
  return out;
}

}  // namespace cbuild::oci
