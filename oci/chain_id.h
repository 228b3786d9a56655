// Chain IDs (image-spec config.md "Layer ChainID"): the identity of a stack of layers.
//   ChainID(L0) = DiffID(L0);  ChainID(L0|…|Ln) = sha256(ChainID(L0|…|Ln-1) + " " + DiffID(Ln))
// Pure functions; thread-safe. (overlay::chain_ids computes the same for snapshots.)
#pragma once

#include <optional>
#include <vector>

#include "oci/digest.h"

namespace cbuild::oci {

// The chain ID of `parent` (nullopt: no parent) with `diff_id` on top.
Digest chain_id(const std::optional<Digest>& parent, const Digest& diff_id);
// The chain ID of every prefix of diff_ids (same length as diff_ids).
std::vector<Digest> chain_ids(const std::vector<Digest>& diff_ids);

}  // namespace cbuild::oci
