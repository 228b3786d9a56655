// BlobFileWriter — appends a stream of bytes to a new file, the way the store's ingest needs:
// small files with one buffered write(2), large files with direct I/O from a writer thread.
//
// Why direct I/O: on this class of VM, copying into the page cache is the costliest part of
// writing a big blob (buffered writes of 1 GiB take 2–4 s of system time; O_DIRECT writes of
// the same bytes about 1 s), and a blob is fsynced before it is published anyway, so keeping
// its pages cached buys nothing but a later read. Once more than one buffer (1 MiB) has been
// written, the fd is switched to O_DIRECT (where the filesystem refuses, it stays buffered)
// and full, 4 KiB-aligned buffers are written by a thread of its own while the caller fills
// the next one — so the caller (which also hashes the bytes) never waits on the disk unless
// all buffers are in flight. The unaligned tail is written buffered by finish().
//
// Errors (ENOSPC, EIO…) of the writer thread are thrown as cbuild::Error from the next write()
// or finish() on the caller's thread; the file's content is then undefined (the owner removes
// it). Use from one thread. The fd is not owned and must stay open until the writer is
// destroyed; the destructor stops the thread (after the write it is in) without throwing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cbuild::oci::internal {

class BlobFileWriter {
 public:
  // `what` names the file in error messages. allow_direct = false keeps every write buffered.
  BlobFileWriter(int fd, std::string what, bool allow_direct = true);
  ~BlobFileWriter();
  BlobFileWriter(const BlobFileWriter&) = delete;
  BlobFileWriter& operator=(const BlobFileWriter&) = delete;

  void write(const std::byte* data, std::size_t size);
  // Writes everything still buffered and waits for the writer thread. Once only.
  void finish();

  // Whether large writes went (or go) through O_DIRECT.
  bool direct() const noexcept;
  std::uint64_t bytes() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbuild::oci::internal
