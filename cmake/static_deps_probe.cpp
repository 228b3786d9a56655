// cmake/deps.cmake: checks that cbuild's dependencies link statically (with the libarchive shim)
// and that the pieces cbuild uses are there.
#include <archive.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

int main() {
  archive* w = archive_write_new();
  archive_write_set_format_pax_restricted(w);
  archive_write_free(w);
  archive* r = archive_read_new();
  archive_read_support_filter_all(r);
  archive_read_support_format_tar(r);
  archive_read_support_format_gnutar(r);
  archive_read_support_format_raw(r);
  archive_read_free(r);
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  EVP_MD_CTX_free(c);
  return static_cast<int>(zlibVersion()[0] == 0) + static_cast<int>(ZSTD_versionNumber() == 0);
}
