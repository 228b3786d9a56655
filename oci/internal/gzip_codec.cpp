// gzip encoding (ISA-L igzip, zlib fallback) and decoding (ISA-L inflate, zlib fallback).
// Both encoders emit raw deflate between cbuild's fixed header and a standard trailer, so the
// bytes depend only on the input, the library and the level.
#include <zlib.h>

#include <cstring>
#include <vector>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/gzip_sized_header.h"
#include "oci/internal/handles.h"

#ifdef CBUILD_HAVE_ISAL
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#endif

namespace cbuild::oci::internal {
namespace {

void put_le32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The member header, plain or sized (gzip_sized_header.h); the sized one is completed by end()
// once the member is whole in `out`.
class MemberHeader {
 public:
  explicit MemberHeader(bool sized) : sized_(sized) {}
  void begin(std::uint64_t size_hint) {
    sized_now_ = sized_ && size_hint <= kSizedGzipMaxInput;
    started_ = false;
    input_ = 0;
  }
  void add(std::string& out, std::size_t input) {
    if (!started_) {
      at_ = out.size();
      if (sized_now_) append_sized_gzip_header(out);
      else out.append(reinterpret_cast<const char*>(kGzipHeader), sizeof kGzipHeader);
      started_ = true;
    }
    input_ += input;
  }
  void end(std::string& out) {
    if (!sized_now_) return;
    if (input_ > kSizedGzipMaxInput || out.size() - at_ > UINT32_MAX)
      throw Error(ErrorKind::Internal, "gzip frame: more input than begin() announced");
    set_sized_gzip_header(out.data() + at_, {static_cast<std::uint32_t>(out.size() - at_), static_cast<std::uint32_t>(input_)});
  }

 private:
  bool sized_, sized_now_ = false, started_ = false;
  std::size_t at_ = 0;
  std::uint64_t input_ = 0;
};

#ifdef CBUILD_HAVE_ISAL
class IsalEncoder final : public Encoder {
 public:
  IsalEncoder(int isal_level, bool sized) : level_(isal_level), header_(sized) {
    // Level 2 (cbuild's gzip -2…-6) with the SMALL level buffer: shorter Huffman blocks adapt
    // to mixed text/binary layers; on the 1 GiB bench tree (bench/layer_write.sh) it lands at
    // 101.3% of gzip -6's size, where the default (LARGE) gives 102.1% and EXTRA_LARGE 103.2%,
    // at the same speed. Part of the encoder id (gzip_library_id), since it changes the bytes.
    static constexpr std::size_t kBuf[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_SMALL,
                                           ISAL_DEF_LVL3_DEFAULT};
    // Scratch ISA-L initialises itself: not zero-filled (one page fault per page saved).
    level_buf_size_ = kBuf[level_];
    level_buf_.reset(new std::uint8_t[level_buf_size_]);
  }
  void begin(std::uint64_t size_hint) override {
    header_.begin(size_hint);
    isal_deflate_init(&z_);
    z_.level = static_cast<std::uint32_t>(level_);
    z_.level_buf = level_buf_.get();
    z_.level_buf_size = static_cast<std::uint32_t>(level_buf_size_);
    z_.gzip_flag = IGZIP_GZIP_NO_HDR;  // ISA-L writes the trailer; the header is ours
  }
  void update(std::span<const std::byte> in, std::string& out, bool last) override {
    header_.add(out, in.size());
    z_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<std::byte*>(in.data()));
    z_.avail_in = static_cast<std::uint32_t>(in.size());
    z_.end_of_stream = last ? 1 : 0;
    z_.flush = NO_FLUSH;
    for (;;) {
      std::size_t old = 0;
      std::size_t room = in.size() / 2 + 65536;
      z_.next_out = grow_for(out, room, old);
      z_.avail_out = static_cast<std::uint32_t>(room);
      int rc = isal_deflate(&z_);
      out.resize(old + room - z_.avail_out);
      if (rc != COMP_OK) throw Error(ErrorKind::Internal, "gzip compression (ISA-L) failed: code " + std::to_string(rc));
      bool done = last ? z_.internal_state.state == ZSTATE_END : z_.avail_in == 0;
      if (done && z_.avail_in == 0) break;
    }
    if (last) header_.end(out);
  }

 private:
  int level_;
  std::unique_ptr<std::uint8_t[]> level_buf_;
  std::size_t level_buf_size_ = 0;
  isal_zstream z_{};
  MemberHeader header_;
};
#endif

class ZlibEncoder final : public Encoder {
 public:
  ZlibEncoder(int level, bool sized) : z_(ZStream::Kind::Deflate), header_(sized) {
    if (deflateInit2(z_.get(), level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw Error(ErrorKind::Internal, "gzip compression (zlib): deflateInit2 failed");
    z_.set_live();
  }
  void begin(std::uint64_t size_hint) override {
    header_.begin(size_hint);
    deflateReset(z_.get());
    crc_ = crc32(0, nullptr, 0);
    size_ = 0;
  }
  void update(std::span<const std::byte> in, std::string& out, bool last) override {
    header_.add(out, in.size());
    z_stream* z = z_.get();
    auto* p = reinterpret_cast<const Bytef*>(in.data());
    crc_ = crc32_z(crc_, p, in.size());
    size_ += in.size();
    z->next_in = const_cast<Bytef*>(p);
    z->avail_in = static_cast<uInt>(in.size());
    for (;;) {
      std::size_t old = 0;
      std::size_t room = in.size() / 2 + 65536;
      z->next_out = grow_for(out, room, old);
      z->avail_out = static_cast<uInt>(room);
      int rc = deflate(z, last ? Z_FINISH : Z_NO_FLUSH);
      out.resize(old + room - z->avail_out);
      if (rc == Z_STREAM_ERROR) throw Error(ErrorKind::Internal, "gzip compression (zlib) failed");
      if (last ? rc == Z_STREAM_END : (z->avail_in == 0 && z->avail_out != 0)) break;
    }
    if (last) {
      put_le32(out, static_cast<std::uint32_t>(crc_));
      put_le32(out, static_cast<std::uint32_t>(size_ & 0xffffffffu));
      header_.end(out);
    }
  }

 private:
  ZStream z_;
  uLong crc_ = 0;
  std::uint64_t size_ = 0;
  MemberHeader header_;
};

constexpr std::size_t kInBuf = 1u << 20;

#ifdef CBUILD_HAVE_ISAL
// Inflates concatenated gzip members with ISA-L (which parses the header and checks the trailer).
class IsalDecoder final : public ByteSource {
 public:
  IsalDecoder(std::unique_ptr<ByteSource> src, std::string what)
      : src_(std::move(src)), what_(std::move(what)), in_(kInBuf) {
    reset_member();
  }
  std::size_t read(std::span<std::byte> out) override {
    if (done_ || out.empty()) return 0;
    for (;;) {
      if (st_.avail_in == 0 && !eof_) fill();
      if (member_done_) {
        // Between members: end of input ends the stream; anything else must be a new member.
        if (st_.avail_in == 0 && eof_) {
          done_ = true;
          return 0;
        }
        reset_member();
        continue;
      }
      st_.next_out = reinterpret_cast<std::uint8_t*>(out.data());
      st_.avail_out = static_cast<std::uint32_t>(std::min<std::size_t>(out.size(), UINT32_MAX));
      int rc = isal_inflate(&st_);
      std::size_t produced = out.size() - st_.avail_out;
      if (rc < 0) throw Error(ErrorKind::DataLoss, what_ + ": corrupt gzip data (ISA-L code " + std::to_string(rc) + ")");
      if (st_.block_state == ISAL_BLOCK_FINISH) member_done_ = true;
      if (produced > 0) return produced;
      if (!member_done_ && st_.avail_in == 0 && eof_)
        throw Error(ErrorKind::DataLoss, what_ + ": truncated gzip data");
    }
  }
  using ByteSource::read;

 private:
  void reset_member() {
    // isal_inflate_init clears the input pointers; the next member starts where this one ended.
    std::uint8_t* next_in = st_.next_in;
    std::uint32_t avail_in = st_.avail_in;
    isal_inflate_init(&st_);
    st_.crc_flag = ISAL_GZIP;
    st_.next_in = next_in;
    st_.avail_in = avail_in;
    member_done_ = false;
  }
  // Inflates from the source's own buffer where it has one (the read-ahead ring): the view
  // lives until the next fill(), and ISA-L keeps nothing of its input past a call.
  void fill() {
    std::span<const std::byte> v = src_->read_view(std::as_writable_bytes(std::span(in_)));
    if (v.empty()) eof_ = true;
    st_.next_in = reinterpret_cast<std::uint8_t*>(const_cast<std::byte*>(v.data()));
    st_.avail_in = static_cast<std::uint32_t>(v.size());
  }

  std::unique_ptr<ByteSource> src_;
  std::string what_;
  std::vector<std::uint8_t> in_;
  inflate_state st_{};
  bool eof_ = false, member_done_ = false, done_ = false;
};
#endif

class ZlibDecoder final : public ByteSource {
 public:
  ZlibDecoder(std::unique_ptr<ByteSource> src, std::string what)
      : src_(std::move(src)), what_(std::move(what)), in_(kInBuf), z_(ZStream::Kind::Inflate) {
    if (inflateInit2(z_.get(), 15 + 16) != Z_OK) throw Error(ErrorKind::Internal, what_ + ": inflateInit2 failed");
    z_.set_live();
  }
  std::size_t read(std::span<std::byte> out) override {
    if (done_ || out.empty()) return 0;
    z_stream* z = z_.get();
    for (;;) {
      if (z->avail_in == 0 && !eof_) {
        std::span<const std::byte> v = src_->read_view(std::as_writable_bytes(std::span(in_)));
        if (v.empty()) eof_ = true;
        z->next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(v.data()));
        z->avail_in = static_cast<uInt>(v.size());
      }
      if (member_done_) {
        if (z->avail_in == 0 && eof_) {
          done_ = true;
          return 0;
        }
        inflateReset(z);
        member_done_ = false;
      }
      z->next_out = reinterpret_cast<Bytef*>(out.data());
      z->avail_out = static_cast<uInt>(std::min<std::size_t>(out.size(), UINT32_MAX));
      int rc = inflate(z, Z_NO_FLUSH);
      std::size_t produced = out.size() - z->avail_out;
      if (rc == Z_STREAM_END) member_done_ = true;
      else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z->avail_in == 0))
        throw Error(ErrorKind::DataLoss, what_ + ": corrupt gzip data (" + (z->msg ? z->msg : "zlib error") + ")");
      if (produced > 0) return produced;
      if (!member_done_ && z->avail_in == 0 && eof_) throw Error(ErrorKind::DataLoss, what_ + ": truncated gzip data");
    }
  }
  using ByteSource::read;

 private:
  std::unique_ptr<ByteSource> src_;
  std::string what_;
  std::vector<Bytef> in_;
  ZStream z_;
  bool eof_ = false, member_done_ = false, done_ = false;
};

}  // namespace

int gzip_effective_level(int level) {
#ifdef CBUILD_HAVE_ISAL
  if (level <= 0) return 0;
  if (level == 1) return 1;
  if (level <= 6) return 2;
  return 3;
#else
  return level;
#endif
}

std::string gzip_library_id() {
  // "+sized": frames carry gzip_sized_header.h's extra field, which changes their bytes.
#ifdef CBUILD_HAVE_ISAL
  // The ISA-L version is not exposed by its headers; libisal-dev's pkg-config version is
  // recorded at configure time when available.
#ifdef CBUILD_ISAL_VERSION
  return std::string("isal-") + CBUILD_ISAL_VERSION + "+l2small+sized";
#else
  return "isal+l2small+sized";
#endif
#else
  return std::string("zlib-") + zlibVersion() + "+sized";
#endif
}

std::unique_ptr<Encoder> make_gzip_encoder(int level, bool sized) {
#ifdef CBUILD_HAVE_ISAL
  return std::make_unique<IsalEncoder>(gzip_effective_level(level), sized);
#else
  return std::make_unique<ZlibEncoder>(level, sized);
#endif
}

// Without isa-l zlib is the only decoder, whatever `zlib` asks for.
std::unique_ptr<ByteSource> make_serial_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what,
                                                     [[maybe_unused]] bool zlib) {
#ifdef CBUILD_HAVE_ISAL
  if (!zlib) return std::make_unique<IsalDecoder>(std::move(src), std::move(what));
#endif
  return std::make_unique<ZlibDecoder>(std::move(src), std::move(what));
}

// Always compiled so the fallback cannot rot; used by tests through this entry point.
std::unique_ptr<Encoder> make_zlib_gzip_encoder(int level, bool sized) {
  return std::make_unique<ZlibEncoder>(level, sized);
}

}  // namespace cbuild::oci::internal
