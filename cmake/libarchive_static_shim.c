/* Only linked when libarchive is linked statically (cmake/deps.cmake says why). libarchive's
 * pax writer reports an entry type it cannot store through this function, which libarchive.a
 * keeps in the object holding its table of every write format; defining it here keeps that
 * object, and libxml2 and ICU with it, out of the link. cbuild's tar writer never hands pax an
 * entry type pax cannot store, so this is not called in practice; if it is, the archive gets
 * the error (EINVAL, as libarchive on Linux) its own version sets. */
#include <errno.h>

#include <archive.h>
#include <archive_entry.h>

void __archive_write_entry_filetype_unsupported(struct archive *a, struct archive_entry *entry, const char *format);

void __archive_write_entry_filetype_unsupported(struct archive *a, struct archive_entry *entry, const char *format) {
  archive_set_error(a, EINVAL, "%s: %s format cannot archive this type of file",
                    archive_entry_pathname(entry), format);
}
