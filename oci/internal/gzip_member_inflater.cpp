// GzipMemberInflater (codec.h): one whole member in memory → its exact uncompressed bytes, with
// ISA-L or zlib. The library checks the header, the CRC-32 and ISIZE; what is checked here is
// that the member is exactly `in` and exactly out.size() bytes, since the sizes came from a
// field the library does not look at.
#include <zlib.h>

#include <memory>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/handles.h"

#ifdef CBUILD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace cbuild::oci::internal {
namespace {

void check_whole(std::size_t in_left, std::size_t produced, std::size_t expected, std::string& error) {
  if (!error.empty()) return;
  if (produced != expected) error = "the member holds " + std::to_string(produced) + " bytes, its size field says " + std::to_string(expected);
  else if (in_left != 0) error = std::to_string(in_left) + " bytes after the member's end, within its size field";
}

#ifdef CBUILD_HAVE_ISAL
class IsalMemberInflater final : public GzipMemberInflater {
 public:
  std::size_t inflate(std::span<const std::uint8_t> in, std::span<std::uint8_t> out, std::string& error) override {
    inflate_state& st = *st_;
    isal_inflate_init(&st);
    st.crc_flag = ISAL_GZIP;
    st.next_in = const_cast<std::uint8_t*>(in.data());
    st.avail_in = static_cast<std::uint32_t>(in.size());
    std::uint8_t none = 0;
    st.next_out = out.empty() ? &none : out.data();
    st.avail_out = static_cast<std::uint32_t>(out.size());
    while (st.block_state != ISAL_BLOCK_FINISH) {
      std::uint32_t in_before = st.avail_in, out_before = st.avail_out;
      int rc = isal_inflate(&st);
      if (rc < 0) {
        error = "corrupt gzip data (ISA-L code " + std::to_string(rc) + ")";
        break;
      }
      if (st.block_state == ISAL_BLOCK_FINISH) break;
      if (st.avail_in == in_before && st.avail_out == out_before) {
        error = st.avail_out == 0 ? "the member holds more than its size field says" : "truncated gzip data";
        break;
      }
    }
    std::size_t produced = out.size() - st.avail_out;
    check_whole(st.avail_in, produced, out.size(), error);
    return produced;
  }

 private:
  std::unique_ptr<inflate_state> st_ = std::make_unique<inflate_state>();
};
#endif

class ZlibMemberInflater final : public GzipMemberInflater {
 public:
  ZlibMemberInflater() : z_(ZStream::Kind::Inflate) {
    if (inflateInit2(z_.get(), 15 + 16) != Z_OK) throw Error(ErrorKind::Internal, "gzip member: inflateInit2 failed");
    z_.set_live();
  }
  std::size_t inflate(std::span<const std::uint8_t> in, std::span<std::uint8_t> out, std::string& error) override {
    z_stream* z = z_.get();
    inflateReset(z);
    z->next_in = const_cast<Bytef*>(in.data());
    z->avail_in = static_cast<uInt>(in.size());
    Bytef none = 0;
    z->next_out = out.empty() ? &none : out.data();
    z->avail_out = static_cast<uInt>(out.size());
    int rc = ::inflate(z, Z_FINISH);
    if (rc == Z_BUF_ERROR)
      error = z->avail_out == 0 ? "the member holds more than its size field says" : "truncated gzip data";
    else if (rc != Z_STREAM_END)
      error = std::string("corrupt gzip data (") + (z->msg ? z->msg : "zlib error") + ")";
    std::size_t produced = out.size() - z->avail_out;
    check_whole(z->avail_in, produced, out.size(), error);
    return produced;
  }

 private:
  ZStream z_;
};

}  // namespace

// Without isa-l zlib is the only inflater, whatever `zlib` asks for.
std::unique_ptr<GzipMemberInflater> make_gzip_member_inflater([[maybe_unused]] bool zlib) {
#ifdef CBUILD_HAVE_ISAL
  if (!zlib) return std::make_unique<IsalMemberInflater>();
#endif
  return std::make_unique<ZlibMemberInflater>();
}

}  // namespace cbuild::oci::internal
