// KeyedMutex — one mutex per key, made on first use and dropped when nobody holds or waits for
// it. Lets the threads of one process serialise work on the same thing (a snapshot's chain ID,
// a build-cache key, an image reference) while work on different keys runs in parallel.
// Cross-process safety is not its job (that is rename and flock). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace cbuild {

class KeyedMutex {
  struct Entry {
    std::mutex mu;
    int users = 0;  // holders and waiters; guarded by KeyedMutex::mu_
  };

 public:
  // Holds the key's mutex until destroyed. Move-only.
  class Guard {
   public:
    Guard(Guard&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)), entry_(o.entry_) { o.owner_ = nullptr; }
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (!owner_) return;
      entry_->mu.unlock();
      owner_->release(key_);
    }

   private:
    friend class KeyedMutex;
    Guard(KeyedMutex* owner, std::string key, Entry* entry) : owner_(owner), key_(std::move(key)), entry_(entry) {}
    KeyedMutex* owner_;
    std::string key_;
    Entry* entry_;
  };

  // Blocks until no other Guard of `key` is alive.
  Guard lock(const std::string& key) {
    Entry* e;
    {
      std::lock_guard g(mu_);
      auto& slot = entries_[key];
      if (!slot) slot = std::make_unique<Entry>();
      ++slot->users;
      e = slot.get();
    }
    e->mu.lock();  // outside mu_: other keys stay free while this one waits
    return Guard(this, key, e);
  }

 private:
  void release(const std::string& key) {
    std::lock_guard g(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && --it->second->users == 0) entries_.erase(it);
  }

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace cbuild
