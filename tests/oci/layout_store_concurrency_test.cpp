// One LayoutStore shared by the threads of a parallel build: blobs ingested at once (the same
// content too), tags set at once, each thread with its own lease — every write lands, nothing
// is torn, and no ingest temp file stays behind.
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"

using namespace cbuild;
using namespace cbuild::oci;
namespace fs = std::filesystem;

TEST_CASE("layout_store: parallel ingests, tags and leases from several threads") {
  TempDir tmp;
  auto store = LayoutStore::open(tmp.path() / "root");
  store->set_default_lease(store->acquire_lease("build"));
  constexpr int kThreads = 6, kRounds = 20;
  std::atomic<bool> go{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      try {
        auto lease = store->acquire_lease("stage");
        for (int i = 0; i < kRounds; ++i) {
          Digest same = store->put_blob("the same bytes from every thread " + std::to_string(i));
          Digest own = store->put_blob("thread " + std::to_string(t) + " round " + std::to_string(i));
          if (!lease->add(own)) ++failures;
          Descriptor d{.media_type = "application/octet-stream", .digest = own, .size = *store->stat(own)};
          store->set_tag("example.com/t" + std::to_string(t) + ":" + std::to_string(i), d);
          if (store->read_blob(same) != "the same bytes from every thread " + std::to_string(i)) ++failures;
        }
      } catch (const std::exception& e) {
        MESSAGE(e.what());
        ++failures;
      }
    });
  go = true;
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(store->tags().size() == static_cast<std::size_t>(kThreads * kRounds));
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kRounds; ++i) {
      auto d = store->resolve("example.com/t" + std::to_string(t) + ":" + std::to_string(i));
      REQUIRE(d);
      CHECK(store->read_blob(d->digest) == "thread " + std::to_string(t) + " round " + std::to_string(i));
    }
  std::vector<std::string> temp;
  for (const auto& e : fs::directory_iterator(tmp.path() / "root" / "tmp")) temp.push_back(e.path().filename());
  CHECK_MESSAGE(temp.empty(), temp.size() << " temp files left");
}
